import { createHash } from 'node:crypto';

/**
 * NATS JWTs (schema version 2), as nats-server 2.9 reads them: a JWS-like
 * `header.claims.signature`, base64url without padding, the signature plain
 * Ed25519 over `header.claims` by the issuer's NKEY. `@nats-io/jwt` encodes
 * these too, but signs synchronously with a seed it holds; the hub's issuing
 * keys never leave the HSM, so the claims are written here and the HSM signs.
 */
export interface JwtSigner {
  /** The issuer's public NKEY (O… or A…). */
  readonly publicKey: string;
  sign(data: Buffer): Promise<Buffer>;
}

export interface SubjectPermission {
  allow?: string[];
  deny?: string[];
}

export interface UserPermissions {
  pub: SubjectPermission;
  sub: SubjectPermission;
}

export interface OperatorClaims {
  type: 'operator';
  system_account: string;
}

export interface AccountClaims {
  type: 'account';
  limits: Record<string, number | boolean>;
  /** User public key → unix seconds: every user JWT of that key issued at or before is refused. */
  revocations?: Record<string, number>;
}

export interface UserClaims extends UserPermissions {
  type: 'user';
  subs: number;
  data: number;
  payload: number;
}

export interface JwtClaims {
  name: string;
  sub: string;
  /** Unix seconds; absent for no expiry. */
  exp?: number;
  /** Unix seconds; defaults to now. */
  iat?: number;
  nats: OperatorClaims | AccountClaims | UserClaims;
}

const b64u = (b: Buffer | string): string => Buffer.from(b).toString('base64url');
const HEADER = b64u(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));

export async function encodeNatsJwt(claims: JwtClaims, signer: JwtSigner): Promise<string> {
  const body: Record<string, unknown> = {
    jti: '',
    iat: claims.iat ?? Math.floor(Date.now() / 1000),
    iss: signer.publicKey,
    name: claims.name,
    sub: claims.sub,
    ...(claims.exp !== undefined ? { exp: claims.exp } : {}),
    nats: { ...claims.nats, version: 2 },
  };
  // jti as the Go library makes it: a hash of the claims; the server does not check it, people comparing JWTs do.
  body.jti = createHash('sha256').update(JSON.stringify(body)).digest('base64url').toUpperCase().slice(0, 52);
  const input = `${HEADER}.${b64u(JSON.stringify(body))}`;
  const signature = await signer.sign(Buffer.from(input, 'ascii'));
  return `${input}.${b64u(signature)}`;
}

/** The claims of a JWT, unchecked: for reading back what the hub itself issued (tests, `iat` of a revocation). */
export function decodeNatsJwtClaims(jwt: string): Record<string, unknown> {
  const part = jwt.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** The `.creds` file format of nsc and nats.js's `credsAuthenticator`. */
export function formatCreds(jwt: string, seed: string): string {
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    'NKEYs are sensitive and should be treated as secrets.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
    '*************************************************************',
    '',
  ].join('\n');
}
