/**
 * The public half of an NKEY as NATS writes it: base32 (RFC 4648, no
 * padding) of a prefix byte, the 32-byte Ed25519 public key and a CRC-16
 * (XMODEM, little-endian). nats.js carries nkeys, but only for keys whose
 * seed it holds; the hub's operator and account keys live in the HSM, so
 * their public keys are encoded here (checked against nats.js's
 * `nkeys.fromPublic` in the unit tests).
 */
export const NKEY_PREFIX = { operator: 14 << 3, account: 0, user: 20 << 3 } as const;
export type NkeyKind = keyof typeof NKEY_PREFIX;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(data: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export function encodePublicNkey(kind: NkeyKind, rawPublicKey: Buffer): string {
  if (rawPublicKey.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
  const body = Buffer.concat([Buffer.from([NKEY_PREFIX[kind]]), rawPublicKey]);
  const crc = Buffer.alloc(2);
  crc.writeUInt16LE(crc16(body));
  return base32(Buffer.concat([body, crc]));
}
