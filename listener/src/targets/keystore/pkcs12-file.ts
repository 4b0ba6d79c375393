import { bytesOf, children, corrupt, ctx, expectTag, integer, oid, readInteger, readOid, readTlv, TAG, tlv } from './der';
import { parseBag, type Pkcs12Bag } from './pkcs12-bags';
import { computeMacData, verifyMacData, type Pkcs12MacKey } from './pkcs12-mac';
import { OID } from './oids';

/**
 * A PKCS#12 file as a sequence of ContentInfos. Plain (`data`) SafeContents
 * are opened bag by bag; anything else (an encryptedData ContentInfo, as
 * keytool writes certificates) is kept whole and re-emitted untouched.
 */
export type Pkcs12Content = { readonly kind: 'plain'; readonly bags: readonly Pkcs12Bag[] } | { readonly kind: 'opaque'; readonly der: Buffer };

/** Parses a PFX and checks its MAC with the password before anything else is trusted. */
export function parsePkcs12(file: Buffer, password: string): Pkcs12Content[] {
  const pfx = readTlv(file, 0);
  if (pfx.end !== file.length) throw corrupt('trailing bytes after the PFX');
  const [version, authSafeInfo, macData] = children(file, expectTag(pfx, TAG.SEQUENCE, 'PFX'));
  if (!version || !authSafeInfo || readInteger(file, version) !== 3) throw corrupt('not a PKCS#12 v3 PFX');
  const authSafe = dataContent(file, authSafeInfo);
  if (!macData) throw corrupt('PFX without MAC: refused, a password could not be checked');
  verifyMacData(file, macData, bytesOf(file, authSafe), password);
  return children(file, expectTag(authSafe, TAG.SEQUENCE, 'AuthenticatedSafe')).map((info) => {
    const [type] = children(file, expectTag(info, TAG.SEQUENCE, 'ContentInfo'));
    if (!type || readOid(file, type) !== OID.data) return { kind: 'opaque', der: Buffer.from(bytesOf(file, info)) };
    const safeContents = dataContent(file, info);
    return { kind: 'plain', bags: children(file, expectTag(safeContents, TAG.SEQUENCE, 'SafeContents')).map((bag) => parseBag(file, bag)) };
  });
}

/** The TLV inside ContentInfo { data, [0] OCTET STRING { ... } }. */
function dataContent(file: Buffer, info: ReturnType<typeof readTlv>) {
  const [type, explicit] = children(file, expectTag(info, TAG.SEQUENCE, 'ContentInfo'));
  if (!type || !explicit || readOid(file, type) !== OID.data) throw corrupt('ContentInfo is not data');
  const octets = readTlv(file, expectTag(explicit, ctx(0), 'ContentInfo content').contentStart, explicit.end);
  expectTag(octets, TAG.OCTET_STRING, 'data content (constructed OCTET STRING is not supported)');
  const inner = readTlv(file, octets.contentStart, octets.end);
  if (inner.end !== octets.end) throw corrupt('bytes after the data content');
  return inner;
}

const dataInfo = (content: Buffer): Buffer => tlv(TAG.SEQUENCE, oid(OID.data), tlv(ctx(0), tlv(TAG.OCTET_STRING, content)));

/**
 * Writes the PFX: every plain bag (kept ones byte for byte, then the new
 * ones) in one unencrypted SafeContents, as keytool puts its key bags; the
 * opaque ContentInfos after it as they were. Certificates are public and go
 * in the plain SafeContents too (Java and OpenSSL read them there), sparing
 * a second password-encrypted container on every rewrite.
 */
export function serializePkcs12(contents: readonly Pkcs12Content[], password: string, macIterations: number, macKey?: Pkcs12MacKey): Buffer {
  const bags = contents.flatMap((c) => (c.kind === 'plain' ? c.bags.map((b) => b.der) : []));
  const infos = bags.length ? [dataInfo(tlv(TAG.SEQUENCE, ...bags))] : [];
  for (const c of contents) if (c.kind === 'opaque') infos.push(c.der);
  const authSafe = tlv(TAG.SEQUENCE, ...infos);
  return tlv(TAG.SEQUENCE, integer(3), dataInfo(authSafe), computeMacData(authSafe, password, macIterations, macKey));
}
