import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Tr31Secrets } from './tr31-secrets';

/** The two block ciphers of the versions supported: TDES for B, AES for D. */
export type Tr31Cipher = 'tdes' | 'aes';

export const cipherBlockSize = (cipher: Tr31Cipher): number => (cipher === 'aes' ? 16 : 8);

function cipherName(cipher: Tr31Cipher, key: Buffer, mode: 'ecb' | 'cbc'): string {
  if (cipher === 'aes') return `aes-${key.length * 8}-${mode}`;
  // Two-key TDES is K1 K2 K1: OpenSSL's des-ede takes the 16 bytes as they are.
  return key.length === 16 ? `des-ede-${mode}` : `des-ede3-${mode}`;
}

/** CBC (or ECB with `iv` null) over whole blocks, no padding; the output is held for wiping. */
export function encryptBlocks(cipher: Tr31Cipher, key: Buffer, iv: Buffer | null, data: Buffer, secrets: Tr31Secrets): Buffer {
  const c = createCipheriv(cipherName(cipher, key, iv ? 'cbc' : 'ecb'), key, iv);
  c.setAutoPadding(false);
  const out = secrets.hold(c.update(data));
  secrets.hold(c.final());
  return out;
}

export function decryptBlocks(cipher: Tr31Cipher, key: Buffer, iv: Buffer, data: Buffer, secrets: Tr31Secrets): Buffer {
  const d = createDecipheriv(cipherName(cipher, key, 'cbc'), key, iv);
  d.setAutoPadding(false);
  const out = secrets.hold(d.update(data));
  secrets.hold(d.final());
  return out;
}

/** Doubling in GF(2^n) as NIST SP 800-38B defines it for the CMAC subkeys. */
function dbl(block: Buffer, secrets: Tr31Secrets): Buffer {
  const out = secrets.alloc(block.length);
  for (let i = 0; i < block.length; i++) out[i] = ((block[i] << 1) | (i + 1 < block.length ? block[i + 1] >> 7 : 0)) & 0xff;
  if (block[0] & 0x80) out[block.length - 1] ^= block.length === 16 ? 0x87 : 0x1b;
  return out;
}

/**
 * CMAC (NIST SP 800-38B) with AES or TDES. Node has no CMAC, so: subkeys
 * from one ECB block, then the last block of a zero-IV CBC pass over the
 * message whose final block is padded and masked with K1 or K2.
 */
export function cmac(cipher: Tr31Cipher, key: Buffer, message: Buffer, secrets: Tr31Secrets): Buffer {
  const bs = cipherBlockSize(cipher);
  const l = encryptBlocks(cipher, key, null, secrets.alloc(bs), secrets);
  const k1 = dbl(l, secrets);
  const complete = message.length > 0 && message.length % bs === 0;
  const subkey = complete ? k1 : dbl(k1, secrets);
  const blocks = Math.max(1, Math.ceil(message.length / bs));
  const m = secrets.alloc(blocks * bs);
  message.copy(m);
  if (!complete) m[message.length] = 0x80;
  for (let i = 0; i < bs; i++) m[m.length - bs + i] ^= subkey[i];
  const chain = encryptBlocks(cipher, key, secrets.alloc(bs), m, secrets);
  const tag = secrets.alloc(bs);
  chain.copy(tag, 0, chain.length - bs);
  return tag;
}
