import type { ClearBytes } from './clear-bytes';
import { oid, TAG, tlv } from './der';
import { serializeSealedObject, serializeSecretKeySpec } from './java-serial-writer';
import { pbeEncrypt } from './jceks-pbe';
import type { JceksEntry } from './jceks-file';
import type { PrivateKeyEntryInput, SecretKeyEntryInput } from './keystore-types';
import { OID } from './oids';

const SEAL_ALGORITHM = 'PBEWithMD5AndTripleDES';

function entryHead(tag: number, alias: string, date: Date): Buffer {
  const head = Buffer.alloc(4 + 2 + alias.length + 8);
  head.writeInt32BE(tag, 0);
  head.writeUInt16BE(alias.length, 4);
  head.write(alias, 6, 'ascii');
  head.writeBigInt64BE(BigInt(date.getTime()), 6 + alias.length);
  return head;
}

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/** Tag 3: the key as a SecretKeySpec sealed with PBEWithMD5AndTripleDES, as KeyProtector.seal does. */
export function jceksSecretEntry(input: SecretKeyEntryInput, password: string, iterations: number, clear: ClearBytes, date = new Date()): JceksEntry {
  const plain = serializeSecretKeySpec(input.algorithm, input.key, clear);
  const { params, encrypted } = pbeEncrypt(plain, password, iterations, clear);
  const der = Buffer.concat([entryHead(3, input.alias, date), serializeSealedObject(params, encrypted, SEAL_ALGORITHM)]);
  return { alias: input.alias, kind: 'secretKey', der };
}

/**
 * Tag 1: the PKCS#8 key encrypted with PBEWithMD5AndTripleDES in an
 * EncryptedPrivateKeyInfo under Sun's JCE KeyProtector OID, as
 * KeyProtector.protect does, then the chain as "X.509" certificates.
 */
export function jceksPrivateEntry(input: PrivateKeyEntryInput, password: string, iterations: number, clear: ClearBytes, date = new Date()): JceksEntry {
  const { params, encrypted } = pbeEncrypt(input.pkcs8, password, iterations, clear);
  const epki = tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, oid(OID.jceKeyProtector), params), tlv(TAG.OCTET_STRING, encrypted));
  const certType = Buffer.concat([Buffer.from([0, 5]), Buffer.from('X.509', 'ascii')]);
  const chain = input.chain.flatMap((cert) => [certType, int32(cert.length), cert]);
  const der = Buffer.concat([entryHead(1, input.alias, date), int32(epki.length), epki, int32(input.chain.length), ...chain]);
  return { alias: input.alias, kind: 'privateKey', der };
}
