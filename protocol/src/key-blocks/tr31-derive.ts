import { cmac, cipherBlockSize, type Tr31Cipher } from './tr31-cmac';
import { Tr31Error } from './tr31-error';
import type { Tr31SupportedVersion } from './tr31-fields';
import type { Tr31Secrets } from './tr31-secrets';

/** The KBPK lengths each version allows, with the algorithm indicator of its derivation data. */
const KBPK_ALGORITHM: Record<Tr31SupportedVersion, Record<number, number>> = {
  // Two-key TDES 0x0000, three-key TDES 0x0001.
  B: { 16: 0x0000, 24: 0x0001 },
  // AES-128 0x0002, AES-192 0x0003, AES-256 0x0004.
  D: { 16: 0x0002, 24: 0x0003, 32: 0x0004 },
};

export const versionCipher = (version: Tr31SupportedVersion): Tr31Cipher => (version === 'D' ? 'aes' : 'tdes');

export function checkKbpk(version: Tr31SupportedVersion, kbpk: Buffer): void {
  if (!Buffer.isBuffer(kbpk) || KBPK_ALGORITHM[version][kbpk.length] === undefined) {
    const allowed = Object.keys(KBPK_ALGORITHM[version]).join(', ');
    throw new Tr31Error('TR31_KBPK_INVALID', `a version ${version} KBPK is ${allowed} bytes long`);
  }
}

/** Key usage indicator of the derivation data. */
const ENCRYPTION = 0x0000;
const AUTHENTICATION = 0x0001;

/**
 * The key derivation binding method of TR-31:2018 / X9.143 (versions B and
 * D): each derived key is CMAC_KBPK(counter | usage | 00 | algorithm |
 * length in bits), counter 1, 2, ... until the KBPK's length is filled. The
 * block encryption key (KBEK) and the block authentication key (KBAK) have
 * the KBPK's algorithm and length. Both are held for wiping.
 */
export function deriveBlockKeys(version: Tr31SupportedVersion, kbpk: Buffer, secrets: Tr31Secrets): { kbek: Buffer; kbak: Buffer } {
  checkKbpk(version, kbpk);
  return { kbek: derive(version, kbpk, ENCRYPTION, secrets), kbak: derive(version, kbpk, AUTHENTICATION, secrets) };
}

function derive(version: Tr31SupportedVersion, kbpk: Buffer, usage: number, secrets: Tr31Secrets): Buffer {
  const cipher = versionCipher(version);
  const bits = kbpk.length * 8;
  const rounds = Math.ceil(kbpk.length / cipherBlockSize(cipher));
  const out = secrets.alloc(rounds * cipherBlockSize(cipher));
  for (let counter = 1; counter <= rounds; counter++) {
    const data = Buffer.from([counter, usage >> 8, usage & 0xff, 0x00, KBPK_ALGORITHM[version][kbpk.length] >> 8, KBPK_ALGORITHM[version][kbpk.length] & 0xff, bits >> 8, bits & 0xff]);
    cmac(cipher, kbpk, data, secrets).copy(out, (counter - 1) * cipherBlockSize(cipher));
  }
  return out.subarray(0, kbpk.length);
}
