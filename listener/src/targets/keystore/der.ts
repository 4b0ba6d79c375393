import * as forge from 'node-forge';
import { KeyhubError } from '@keyhub/shared';

/**
 * The few DER pieces the keystore formats need, on Node Buffers. Why not
 * forge's asn1 objects throughout: they hold values as immutable JS strings,
 * which cannot be wiped, and a rewrite must re-emit existing bags byte for
 * byte, which needs exact offsets into the file. forge still encodes and
 * decodes OIDs and derives the PKCS#12 MAC key.
 */
export const TAG = { INTEGER: 0x02, OCTET_STRING: 0x04, NULL: 0x05, OID: 0x06, BMP_STRING: 0x1e, SEQUENCE: 0x30, SET: 0x31 } as const;

/** Context-specific constructed tag [n], as used for EXPLICIT tagging. */
export const ctx = (n: number): number => 0xa0 | n;

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV. The result copies the content: callers hold it in ClearBytes when the content is secret. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const len = content.reduce((n, b) => n + b.length, 0);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(len), ...content]);
}

export const oid = (dotted: string): Buffer => tlv(TAG.OID, Buffer.from(forge.asn1.oidToDer(dotted).getBytes(), 'binary'));

export function integer(n: number): Buffer {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  if (bytes.length === 0 || bytes[0] & 0x80) bytes.unshift(0);
  return tlv(TAG.INTEGER, Buffer.from(bytes));
}

export const NULL = Buffer.from([TAG.NULL, 0]);

export function bmpString(text: string): Buffer {
  const out = Buffer.alloc(text.length * 2);
  for (let i = 0; i < text.length; i++) out.writeUInt16BE(text.charCodeAt(i), i * 2);
  return tlv(TAG.BMP_STRING, out);
}

/** Where one TLV sits in a buffer. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export function corrupt(what: string): KeyhubError {
  return new KeyhubError('KEYSTORE_CORRUPT', `keystore is not well formed: ${what}`);
}

/** Reads the TLV at `offset`; definite lengths only (DER), as Java and OpenSSL write keystores. */
export function readTlv(buf: Buffer, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw corrupt('truncated DER');
  const tag = buf[offset];
  let len = buf[offset + 1];
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || pos + n > limit) throw corrupt('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + i];
    pos += n;
  }
  if (pos + len > limit) throw corrupt('DER length past its container');
  return { tag, start: offset, contentStart: pos, end: pos + len };
}

export function expectTag(t: Tlv, tag: number, what: string): Tlv {
  if (t.tag !== tag) throw corrupt(`${what}: tag 0x${t.tag.toString(16)}`);
  return t;
}

/** The TLVs directly inside a constructed one. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.contentStart; pos < parent.end;) {
    const child = readTlv(buf, pos, parent.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

export const contentOf = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.contentStart, t.end);
export const bytesOf = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.start, t.end);

export function readOid(buf: Buffer, t: Tlv): string {
  expectTag(t, TAG.OID, 'OID expected');
  return forge.asn1.derToOid(contentOf(buf, t).toString('binary'));
}

export function readInteger(buf: Buffer, t: Tlv): number {
  expectTag(t, TAG.INTEGER, 'INTEGER expected');
  const c = contentOf(buf, t);
  if (c.length === 0 || c.length > 6 || c[0] & 0x80) throw corrupt('INTEGER out of range');
  return c.readUIntBE(0, c.length);
}

export function readBmpString(buf: Buffer, t: Tlv): string {
  const c = contentOf(buf, expectTag(t, TAG.BMP_STRING, 'BMPString expected'));
  let s = '';
  for (let i = 0; i + 1 < c.length; i += 2) s += String.fromCharCode(c.readUInt16BE(i));
  return s;
}
