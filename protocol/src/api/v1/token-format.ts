/**
 * API tokens: `khub_<id>_<secret>`, a 128-bit public id (32 hex digits) that
 * names the stored row and a 256-bit secret (43 base64url characters) of
 * which the hub keeps only the SHA-256. The fixed prefix lets secret
 * scanners and log redaction recognise a token wherever it leaks.
 */
export const TOKEN_PREFIX = 'khub_';
const TOKEN_PATTERN = /^khub_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;
/** Anything that looks like a token, anywhere in a text: for redaction. */
export const TOKEN_LIKE = /khub_[0-9a-f]{32}_[A-Za-z0-9_-]{43}/g;

export function formatApiToken(id: string, secret: string): string {
  return `${TOKEN_PREFIX}${id}_${secret}`;
}

export function parseApiToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_PATTERN.exec(token);
  return m ? { id: m[1], secret: m[2] } : undefined;
}
