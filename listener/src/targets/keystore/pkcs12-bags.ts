import { createHash } from 'node:crypto';
import { bmpString, bytesOf, children, contentOf, ctx, readBmpString, readOid, TAG, tlv, oid, type Tlv, expectTag, corrupt } from './der';
import type { KeystoreEntryKind } from './keystore-types';
import { OID } from './oids';

/** One SafeBag of a plain SafeContents: its exact bytes, kept untouched on rewrite, and what Java reads from it. */
export interface Pkcs12Bag {
  readonly der: Buffer;
  readonly kind: KeystoreEntryKind | 'chainCertificate' | 'other';
  readonly alias?: string;
  readonly localKeyId?: string;
}

function attributes(alias: string | undefined, localKeyId: Buffer | undefined): Buffer[] {
  const attrs: Buffer[] = [];
  if (alias !== undefined) attrs.push(tlv(TAG.SEQUENCE, oid(OID.friendlyName), tlv(TAG.SET, bmpString(alias))));
  if (localKeyId !== undefined) attrs.push(tlv(TAG.SEQUENCE, oid(OID.localKeyId), tlv(TAG.SET, tlv(TAG.OCTET_STRING, localKeyId))));
  return attrs.length ? [tlv(TAG.SET, ...attrs)] : [];
}

/** localKeyId pairs a key bag with its certificate bag; unique per alias, and stable so a re-import of one alias gives the same bags. */
export const localKeyIdFor = (alias: string): Buffer => createHash('sha1').update(`keyhub:${alias}`).digest();

/** keytool's layout for a secret key: a SecretBag whose value is a pkcs8ShroudedKeyBag holding the EncryptedPrivateKeyInfo. */
export function secretBag(alias: string, encrypted: Buffer): Buffer {
  const value = tlv(TAG.SEQUENCE, oid(OID.pkcs8ShroudedKeyBag), tlv(ctx(0), tlv(TAG.OCTET_STRING, encrypted)));
  return tlv(TAG.SEQUENCE, oid(OID.secretBag), tlv(ctx(0), value), ...attributes(alias, localKeyIdFor(alias)));
}

export function shroudedKeyBag(alias: string, encrypted: Buffer): Buffer {
  return tlv(TAG.SEQUENCE, oid(OID.pkcs8ShroudedKeyBag), tlv(ctx(0), encrypted), ...attributes(alias, localKeyIdFor(alias)));
}

/** The leaf carries the alias and localKeyId of its key; issuers carry nothing, Java links them by subject and issuer. */
export function certBag(cert: Buffer, owner?: string): Buffer {
  const value = tlv(TAG.SEQUENCE, oid(OID.x509Certificate), tlv(ctx(0), tlv(TAG.OCTET_STRING, cert)));
  return tlv(TAG.SEQUENCE, oid(OID.certBag), tlv(ctx(0), value), ...attributes(owner, owner === undefined ? undefined : localKeyIdFor(owner)));
}

const KIND_BY_BAG: Record<string, Pkcs12Bag['kind']> = {
  [OID.pkcs8ShroudedKeyBag]: 'privateKey',
  [OID.keyBag]: 'privateKey',
  [OID.secretBag]: 'secretKey',
  [OID.certBag]: 'chainCertificate',
};

/** Reads what Java would read from a bag (type, friendlyName, localKeyId) and keeps its bytes. */
export function parseBag(file: Buffer, bag: Tlv): Pkcs12Bag {
  const [bagId, , attrSet] = children(file, expectTag(bag, TAG.SEQUENCE, 'SafeBag'));
  if (!bagId) throw corrupt('SafeBag without type');
  let kind = KIND_BY_BAG[readOid(file, bagId)] ?? 'other';
  let alias: string | undefined;
  let localKeyId: string | undefined;
  for (const attr of attrSet ? children(file, expectTag(attrSet, TAG.SET, 'bag attributes')) : []) {
    const [type, values] = children(file, expectTag(attr, TAG.SEQUENCE, 'attribute'));
    const first = values ? children(file, values)[0] : undefined;
    if (!type || !first) continue;
    const attrOid = readOid(file, type);
    if (attrOid === OID.friendlyName) alias = readBmpString(file, first).toLowerCase();
    else if (attrOid === OID.localKeyId) localKeyId = contentOf(file, first).toString('hex');
  }
  // A certificate with a name and no key is a trusted-certificate entry to Java.
  if (kind === 'chainCertificate' && alias !== undefined && localKeyId === undefined) kind = 'trustedCertificate';
  return { der: Buffer.from(bytesOf(file, bag)), kind, alias, localKeyId };
}
