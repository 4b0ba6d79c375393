import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../../errors';
import { LIMITS } from '../../limits';
import { LISTENER_ID_PATTERN } from '../../subjects';

/*
 * Building blocks of the REST API's bodies. Like the wire schemas, every
 * object is strict and every string and array bounded: the API validates
 * exactly as the bus does, and the OpenAPI document is generated from these.
 */

export const API_PREFIX = '/v1';

export const uuid = z.uuid();
export const timestamp = z.iso.datetime({ offset: false });
export const kcv = z.string().regex(/^[0-9a-f]{6}$/);
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
export const listenerId = z.string().regex(LISTENER_ID_PATTERN);
export const targetName = z
  .string()
  .min(1)
  .max(LIMITS.maxNameChars)
  .regex(/^[A-Za-z0-9._:/-]+$/);
export const shortText = z.string().max(LIMITS.maxTextChars);

/**
 * Key names may contain slashes (`payments/zmk`), so they are checked as
 * paths: no empty, `.` or `..` segment, nothing that a file system, a URL
 * or a terminal would read as something else.
 */
export const keyName = z
  .string()
  .min(1)
  .max(LIMITS.maxNameChars)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/)
  .refine((s) => s.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..'), { message: 'key name has an empty, "." or ".." segment' });

export const operatorName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9._@-]*$/, 'operator names are lower case: a-z 0-9 . _ @ -');

export const ROLES = ['admin', 'key-officer', 'approver', 'auditor'] as const;
export type Role = (typeof ROLES)[number];
export const role = z.enum(ROLES);
export const roleList = z.array(role).min(1).max(ROLES.length);

/** Page through long lists by the last item's key; a page holds at most `limit` items. */
export const pageQuery = z.strictObject({
  after: z.string().max(LIMITS.maxNameChars).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

const errorCode = z.string().refine((c): c is ErrorCode => Object.prototype.hasOwnProperty.call(ERROR_CODES, c));

/** Every error the API returns, whatever the status: the code is from protocol/src/errors.ts. */
export const apiErrorBody = z.strictObject({
  error: z.strictObject({
    code: errorCode,
    message: z.string().max(4096),
    retryable: z.boolean(),
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  }),
});
export type ApiErrorBody = z.infer<typeof apiErrorBody>;

export const okBody = z.strictObject({ ok: z.literal(true) });
