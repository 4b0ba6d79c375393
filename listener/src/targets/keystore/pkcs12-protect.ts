import { createCipheriv, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { ClearBytes } from './clear-bytes';
import { integer, NULL, oid, TAG, tlv } from './der';
import { OID, SECRET_KEY_OIDS } from './oids';
import type { SecretKeyAlgorithm } from './keystore-types';

const pbkdf2Async = promisify(pbkdf2);

/**
 * PKCS#8 EncryptedPrivateKeyInfo exactly as Java 17 protects PKCS#12 entries
 * (PBEWithHmacSHA256AndAES_256): PBES2, PBKDF2-HMAC-SHA256 with a 20-byte
 * salt, AES-256-CBC. Done with node:crypto rather than forge's
 * encryptPrivateKeyInfo so the derived key and the plaintext stay in
 * Buffers we can wipe (forge keeps them in JS strings), and PBKDF2 runs
 * natively off the event loop.
 */
export async function encryptPkcs8(plain: Buffer, password: string, iterations: number, clear: ClearBytes): Promise<Buffer> {
  const salt = randomBytes(20);
  const iv = randomBytes(16);
  const key = clear.hold(await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256'));
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  const kdf = tlv(TAG.SEQUENCE, oid(OID.pbkdf2), tlv(TAG.SEQUENCE, tlv(TAG.OCTET_STRING, salt), integer(iterations), integer(32), tlv(TAG.SEQUENCE, oid(OID.hmacWithSHA256), NULL)));
  const scheme = tlv(TAG.SEQUENCE, oid(OID.aes256Cbc), tlv(TAG.OCTET_STRING, iv));
  const algorithm = tlv(TAG.SEQUENCE, oid(OID.pbes2), tlv(TAG.SEQUENCE, kdf, scheme));
  return tlv(TAG.SEQUENCE, algorithm, tlv(TAG.OCTET_STRING, encrypted));
}

/**
 * A secret key in the PKCS#8 shape Java's PKCS12KeyStore gives it:
 * SEQUENCE { 0, AlgorithmIdentifier { key OID }, OCTET STRING key }. Every
 * intermediate encoding holds the key, so each is held for wiping.
 */
export function secretKeyInfo(algorithm: SecretKeyAlgorithm, key: Buffer, clear: ClearBytes): Buffer {
  const octets = clear.hold(tlv(TAG.OCTET_STRING, key));
  return clear.hold(tlv(TAG.SEQUENCE, integer(0), tlv(TAG.SEQUENCE, oid(SECRET_KEY_OIDS[algorithm])), octets));
}
