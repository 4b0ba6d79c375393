import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type api } from '@keyhub/protocol';
import { KeyhubError, type Logger } from '@keyhub/shared';

/** Fastify's own failures, mapped onto the stable codes. */
function fromFastify(err: FastifyError): KeyhubError | undefined {
  if (err.validation) {
    const where = err.validationContext ?? 'request';
    const first = err.validation
      .slice(0, 3)
      .map((v) => `${v.instancePath || where}: ${v.message ?? 'invalid'}`)
      .join('; ');
    return new KeyhubError('INPUT_INVALID', `invalid ${where}: ${first}`);
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KeyhubError('REQUEST_TOO_LARGE', 'request body exceeds the size limit');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new KeyhubError('REQUEST_MALFORMED', 'request body is not valid JSON');
    // The router's own refusals, before any route or hook runs: they get the API's error body like the rest.
    case 'FST_ERR_BAD_URL':
      return new KeyhubError('INPUT_INVALID', 'the request path is not validly percent-encoded');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new KeyhubError('INPUT_INVALID', 'a path parameter is longer than any valid value');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new KeyhubError('REQUEST_MALFORMED', 'request body must be application/json');
  }
  if (err.statusCode === 429) return new KeyhubError('RATE_LIMITED', 'too many requests; retry later');
  // secure-json-parse refuses prototype keys with a SyntaxError of its own.
  if (err.statusCode === 400 && err instanceof SyntaxError && /prototype/i.test(err.message))
    return new KeyhubError('REQUEST_MALFORMED', 'request body carries a forbidden key (__proto__ or constructor.prototype)');
  if (err.statusCode === 400 && err instanceof SyntaxError) return new KeyhubError('REQUEST_MALFORMED', 'request body is not valid JSON');
  return undefined;
}

export function toApiError(err: unknown): KeyhubError {
  if (err instanceof KeyhubError) return err;
  const e = err as FastifyError;
  return fromFastify(e) ?? KeyhubError.from(err, 'INTERNAL');
}

export function errorBody(e: KeyhubError): api.ApiErrorBody {
  // Internal failures say nothing of their insides to the caller; the log has the cause.
  const message = e.code === 'INTERNAL' ? 'internal error' : e.message;
  return { error: { code: e.code, message, retryable: e.retryable, ...(e.details ? { details: e.details } : {}) } };
}

/** Codes that mean stored data no longer matches what the HSM vouched for. */
const TAMPER_CODES: ReadonlySet<string> = new Set(['AUDIT_CHAIN_BROKEN', 'ROW_MAC_INVALID']);

export function errorHandler(logger: Logger) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply): void => {
    const e = toApiError(err);
    const status = ERROR_CODES[e.code].httpStatus;
    // Server faults, and evidence that the database was written behind the hub's back: operators must see both in the log.
    if (status >= 500 || TAMPER_CODES.has(e.code))
      logger.error(
        { code: e.code, ckr: e.ckr, route: req.routeOptions.url, method: req.method, err: e.cause instanceof Error ? e.cause.message : undefined },
        e.code === 'INTERNAL' ? 'api request failed' : e.message,
      );
    if (e.code === 'RATE_LIMITED') reply.header('retry-after', '60');
    void reply
      .code(status)
      .type('application/json')
      .send(JSON.stringify(errorBody(e)));
  };
}
