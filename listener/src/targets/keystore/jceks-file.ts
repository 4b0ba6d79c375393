import { ByteReader } from './byte-reader';
import { createHash, timingSafeEqual } from 'node:crypto';
import { KeyhubError } from '@keyhub/shared';
import { corrupt } from './der';
import { endOfSerializedObject } from './java-serial-skip';
import type { KeystoreEntryKind } from './keystore-types';

/**
 * The JCEKS file (com.sun.crypto.provider.JceKeyStore): magic 0xcececece,
 * version 2, entry count, entries, then SHA-1(password as UTF-16BE ||
 * "Mighty Aphrodite" || everything before). Entries are kept as their exact
 * bytes, so a rewrite re-emits them untouched.
 */
const MAGIC = 0xcececece;
const VERSION = 2;
const DIGEST_LEN = 20;
const TAG_KIND: Record<number, KeystoreEntryKind> = { 1: 'privateKey', 2: 'trustedCertificate', 3: 'secretKey' };

export interface JceksEntry {
  readonly alias: string;
  readonly kind: KeystoreEntryKind;
  /** From the entry's tag to its end, as found in (or written to) the file. */
  readonly der: Buffer;
}

function keyedHash(password: string): ReturnType<typeof createHash> {
  const pw = Buffer.alloc(password.length * 2);
  for (let i = 0; i < password.length; i++) pw.writeUInt16BE(password.charCodeAt(i), i * 2);
  const md = createHash('sha1').update(pw).update('Mighty Aphrodite', 'utf8');
  pw.fill(0);
  return md;
}

class Reader extends ByteReader {
  constructor(buf: Buffer, pos = 0) {
    super(buf, pos, 'JCEKS');
  }
  /** A certificate as JceKeyStore v2 writes it: type (UTF), length, DER. */
  cert(): void {
    this.utf();
    this.advance(this.i32());
  }
}

function readEntry(r: Reader): JceksEntry {
  const start = r.pos;
  const tag = r.i32();
  const kind = TAG_KIND[tag];
  if (!kind) throw corrupt(`unknown JCEKS entry tag ${tag}`);
  const alias = r.utf();
  r.advance(8); // creation date
  if (tag === 1) {
    r.advance(r.i32());
    for (let n = r.i32(); n > 0; n--) r.cert();
  } else if (tag === 2) r.cert();
  else r.pos = endOfSerializedObject(r.buf, r.pos);
  return { alias: alias.toLowerCase(), kind, der: Buffer.from(r.buf.subarray(start, r.pos)) };
}

/** Parses a JCEKS file and checks its keyed hash with the password first. */
export function parseJceks(file: Buffer, password: string): JceksEntry[] {
  if (file.length < 12 + DIGEST_LEN || file.readUInt32BE(0) !== MAGIC) throw corrupt('not a JCEKS keystore');
  const body = file.subarray(0, file.length - DIGEST_LEN);
  const digest = keyedHash(password).update(body).digest();
  if (!timingSafeEqual(digest, file.subarray(body.length))) {
    // A wrong password and an altered or truncated file look the same here, as in Java.
    throw new KeyhubError('KEYSTORE_WRONG_PASSWORD', 'JCEKS integrity check fails: wrong password or the file was altered');
  }
  const r = new Reader(body, 4);
  if (r.i32() !== VERSION) throw corrupt('JCEKS version other than 2');
  const entries: JceksEntry[] = [];
  for (let n = r.i32(); n > 0; n--) entries.push(readEntry(r));
  if (r.pos !== body.length) throw corrupt('bytes after the last JCEKS entry');
  return entries;
}

export function serializeJceks(entries: readonly JceksEntry[], password: string): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32BE(MAGIC, 0);
  head.writeUInt32BE(VERSION, 4);
  head.writeUInt32BE(entries.length, 8);
  const body = Buffer.concat([head, ...entries.map((e) => e.der)]);
  return Buffer.concat([body, keyedHash(password).update(body).digest()]);
}
