import { createCipheriv, createDecipheriv } from 'node:crypto';

/** RFC 5649's alternative initial value; OpenSSL takes it as the 4-byte IV of id-aesN-wrap-pad. */
const KWP_AIV = Buffer.from('a65959a6', 'hex');

function cipherName(kek: Buffer): string {
  if (kek.length !== 16 && kek.length !== 24 && kek.length !== 32) throw new RangeError('AES-KWP key must be 16, 24 or 32 bytes');
  return `id-aes${kek.length * 8}-wrap-pad`;
}

/** AES key wrap with padding (RFC 5649) in memory. The output is ciphertext; the caller owns and wipes `kek` and `data`. */
export function kwpWrap(kek: Buffer, data: Buffer): Buffer {
  const c = createCipheriv(cipherName(kek), kek, KWP_AIV);
  return Buffer.concat([c.update(data), c.final()]);
}

/** The inverse, for tests and stand-ins of our own; the caller wipes the result. */
export function kwpUnwrap(kek: Buffer, blob: Buffer): Buffer {
  const d = createDecipheriv(cipherName(kek), kek, KWP_AIV);
  return Buffer.concat([d.update(blob), d.final()]);
}
