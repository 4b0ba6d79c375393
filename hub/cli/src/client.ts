import { request, type RequestOptions } from 'node:https';
import { pipeline } from 'node:stream/promises';
import type { z } from 'zod';
import { api } from '@keyhub/protocol';
import type { Credentials } from './credentials';
import { CliError } from './errors';

/** A response's status and its body, parsed by the schema the protocol gives for that status. */
export interface ApiResponse<T> {
  status: number;
  body: T;
}

const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/**
 * The only way the CLI reaches the hub: HTTPS with the hub CA pinned (no
 * system CAs), a bearer token or client certificate, JSON in and out. Every
 * answer is parsed with the protocol's schema before the CLI uses it.
 */
export class HubClient {
  constructor(private readonly creds: Credentials) {}

  async call<S extends Record<number, z.ZodType>>(method: string, path: string, schemas: S, body?: unknown): Promise<{ [K in keyof S]: { status: K; body: z.infer<S[K]> } }[keyof S]> {
    const { status, text } = await this.send(method, path, body);
    let parsed: unknown;
    try {
      parsed = text.length ? JSON.parse(text) : undefined;
    } catch {
      throw new CliError('INTERNAL', `the hub answered HTTP ${status} with a body that is not JSON`);
    }
    const schema = schemas[status];
    if (!schema) throw CliError.fromBody(status, parsed);
    const result = schema.safeParse(parsed);
    if (!result.success) throw new CliError('INTERNAL', `the hub's answer to ${method} ${path} does not match the API schema: ${result.error.issues[0]?.message ?? ''}`);
    return { status, body: result.data } as { [K in keyof S]: { status: K; body: z.infer<S[K]> } }[keyof S];
  }

  /** For routes that answer one body on success. */
  async get<T extends z.ZodType>(path: string, schema: T): Promise<z.infer<T>> {
    return (await this.call('GET', path, { 200: schema })).body as z.infer<T>;
  }

  async post<T extends z.ZodType>(path: string, schema: T, body: unknown = {}, status = 200): Promise<z.infer<T>> {
    return (await this.call('POST', path, { [status]: schema }, body)).body as z.infer<T>;
  }

  /**
   * A 200 answer's body streamed into `sink` as it arrives (reports as CSV
   * or PDF: no size cap, never held whole); any other status is read as the
   * API's JSON error.
   */
  download(path: string, sink: NodeJS.WritableStream): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(this.options('GET', path, { accept: '*/*' }), (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.length < 1024 && chunks.push(c));
          res.on('end', () => {
            let body: unknown;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              body = undefined;
            }
            reject(CliError.fromBody(res.statusCode ?? 0, body));
          });
          return;
        }
        // pipeline ends a file sink and waits for it; stdout is written to but never ended.
        pipeline(res, sink).then(() => (res.complete ? resolve() : reject(new CliError('HUB_UNAVAILABLE', `the hub closed ${path} before its end`, undefined, true))), reject);
      });
      req.on('timeout', () => req.destroy(new CliError('TIMEOUT', `no answer from ${this.creds.addr} in time`)));
      req.on('error', (err) => reject(err instanceof CliError ? err : new CliError('HUB_UNAVAILABLE', `cannot reach the hub at ${this.creds.addr}: ${err.message}`, undefined, true)));
      req.end();
    });
  }

  private options(method: string, path: string, headers: Record<string, string>): RequestOptions {
    const url = new URL(`${this.creds.addr}${path}`);
    if (this.creds.token) headers.authorization = `Bearer ${this.creds.token}`;
    return {
      method,
      hostname: url.hostname,
      port: url.port || 443,
      path: `${url.pathname}${url.search}`,
      headers,
      ca: this.creds.caPem,
      ...(this.creds.clientCert ? { cert: this.creds.clientCert.cert, key: this.creds.clientCert.key } : {}),
      timeout: Number(process.env.KEYHUB_HTTP_TIMEOUT_MS ?? 600_000),
    };
  }

  private send(method: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
    const url = new URL(`${this.creds.addr}${path}`);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.creds.token) headers.authorization = `Bearer ${this.creds.token}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const options: RequestOptions = {
      method,
      hostname: url.hostname,
      port: url.port || 443,
      path: `${url.pathname}${url.search}`,
      headers,
      ca: this.creds.caPem,
      ...(this.creds.clientCert ? { cert: this.creds.clientCert.cert, key: this.creds.clientCert.key } : {}),
      timeout: Number(process.env.KEYHUB_HTTP_TIMEOUT_MS ?? 600_000),
    };
    return new Promise((resolve, reject) => {
      const req = request(options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new CliError('MESSAGE_TOO_LARGE', 'the hub answered with more than 256 MiB'));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new CliError('TIMEOUT', `no answer from ${this.creds.addr} in time`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof CliError) return reject(err);
        if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(err.code ?? '')) {
          return reject(new CliError('TLS_UNTRUSTED', `the hub at ${this.creds.addr} did not present a certificate from the pinned CA (${err.code})`));
        }
        reject(new CliError('HUB_UNAVAILABLE', `cannot reach the hub at ${this.creds.addr}: ${err.code ?? err.message}`, undefined, true));
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}

export const errorBody = api.apiErrorBody;
