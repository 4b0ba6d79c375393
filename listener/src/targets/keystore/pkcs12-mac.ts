import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as forge from 'node-forge';
import { KeyhubError } from '@keyhub/shared';
import { children, contentOf, corrupt, expectTag, integer, NULL, oid, readInteger, readOid, readTlv, TAG, tlv, type Tlv } from './der';
import { MAX_ITERATIONS } from './keystore-types';
import { OID } from './oids';

type MacHash = 'sha1' | 'sha256' | 'sha384' | 'sha512';
const HASH_BY_OID: Record<string, MacHash> = { [OID.sha1]: 'sha1', [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512' };
const SIZE: Record<MacHash, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

/**
 * The PKCS#12 MAC key: the PKCS#12 KDF (RFC 7292 appendix B, ID 3) over the
 * password as a null-terminated BMPString, as Java and OpenSSL derive it.
 * forge implements the KDF; it sees only the password, never key material.
 */
function macKey(password: string, salt: Buffer, iterations: number, hash: MacHash): Buffer {
  const md = forge.md[hash].create();
  const key = forge.pkcs12.generateKey(password, forge.util.createBuffer(salt.toString('binary')), 3, iterations, SIZE[hash], md);
  return Buffer.from(key.getBytes(), 'binary');
}

/** A derived MAC key with its salt and iteration count. */
export interface Pkcs12MacKey {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly key: Buffer;
}

/**
 * A fresh salt and the MAC key derived from it. The KDF is the cost of a
 * rewrite (forge's PKCS#12 KDF in JavaScript: tens of ms at 10,000
 * iterations), so one writer derives it once and MACs each rewrite with it:
 * HMAC under one key over different contents is what HMAC is for, and the
 * key is no more secret than the password the writer already holds.
 */
export function newMacKey(password: string, iterations: number): Pkcs12MacKey {
  const salt = randomBytes(20);
  return { salt, iterations, key: macKey(password, salt, iterations, 'sha256') };
}

/** MacData { DigestInfo { sha256, HMAC }, salt, iterations } over the AuthenticatedSafe content, as Java 17 writes it. */
export function computeMacData(authSafe: Buffer, password: string, iterations: number, derived: Pkcs12MacKey = newMacKey(password, iterations)): Buffer {
  const { salt } = derived;
  iterations = derived.iterations;
  const mac = createHmac('sha256', derived.key).update(authSafe).digest();
  const digestInfo = tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, oid(OID.sha256), NULL), tlv(TAG.OCTET_STRING, mac));
  return tlv(TAG.SEQUENCE, digestInfo, tlv(TAG.OCTET_STRING, salt), integer(iterations));
}

/** Checks the file's MAC (SHA-1 or SHA-2 family) with the password; a mismatch is a wrong password, or tampering. */
export function verifyMacData(file: Buffer, macData: Tlv, authSafe: Buffer, password: string): void {
  const [digestInfo, saltTlv, iterTlv] = children(file, expectTag(macData, TAG.SEQUENCE, 'MacData'));
  if (!digestInfo || !saltTlv) throw corrupt('MacData incomplete');
  const [algId, digestTlv] = children(file, expectTag(digestInfo, TAG.SEQUENCE, 'DigestInfo'));
  const hash = HASH_BY_OID[readOid(file, readTlv(file, expectTag(algId, TAG.SEQUENCE, 'AlgorithmIdentifier').contentStart, algId.end))];
  if (!hash) throw corrupt('MAC digest algorithm not supported');
  const iterations = iterTlv ? readInteger(file, iterTlv) : 1;
  if (iterations > MAX_ITERATIONS) throw corrupt('MAC iteration count too large');
  const expected = contentOf(file, expectTag(digestTlv, TAG.OCTET_STRING, 'MAC digest'));
  const salt = contentOf(file, expectTag(saltTlv, TAG.OCTET_STRING, 'MAC salt'));
  const actual = createHmac(hash, macKey(password, salt, iterations, hash))
    .update(authSafe)
    .digest();
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new KeyhubError('KEYSTORE_WRONG_PASSWORD', 'keystore MAC does not verify: wrong password or the file was altered');
  }
}
