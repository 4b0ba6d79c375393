import canonicalizeJson from 'canonicalize';

/**
 * RFC 8785 (JCS) canonical bytes: the one encoding every signature and the
 * audit hash chain are computed over, so that any implementation that parses
 * the JSON can recompute them.
 */
export function canonicalBytes(value: unknown): Buffer {
  const text = canonicalizeJson(value);
  if (text === undefined) throw new TypeError('value cannot be canonicalized');
  return Buffer.from(text, 'utf8');
}
