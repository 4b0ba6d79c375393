/**
 * PKCS#11 array attributes (CKA_UNWRAP_TEMPLATE, CKA_WRAP_TEMPLATE): their
 * value is a CK_ATTRIBUTE[] whose entries point at their own values. pkcs11js
 * (2.1.7, the latest) copies every attribute value it is given and has no
 * notion of nested templates, so the inner pointers must be built here, into
 * memory that stays put for the life of the process.
 *
 * That memory is one buffer above glibc's largest mmap threshold (32 MiB on
 * 64-bit), so malloc gives it a mapping of its own, which appears in
 * /proc/self/maps as the one new region; its address is confirmed by reading
 * a random marker back through /proc/self/mem. Only the first page is ever
 * written (the rest is never touched, so never resident). Templates are
 * built once each and cached: a few per process (KeyClasses), never freed.
 *
 * Linux only, like the rest of the deployment; elsewhere creating a key
 * with an unwrap template fails with HSM_ERROR naming this limit (fail
 * closed: no key is made without the template its class needs). A pkcs11js
 * with nested templates would make this file unnecessary.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { KeyhubError } from '../../errors';

/** sizeof(CK_ATTRIBUTE) on LP64: CK_ULONG type, void* pValue, CK_ULONG ulValueLen. */
const CK_ATTRIBUTE_SIZE = 24;
const ARENA_BYTES = 33 * 1024 * 1024;
/** What the cache may hold: templates are a handful of fixed classes, never per call. */
const ARENA_USABLE = 64 * 1024;
const MARKER_BYTES = 32;

export interface RawAttribute {
  type: number;
  value: Buffer;
}

interface Arena {
  memory: Buffer;
  address: bigint;
  used: number;
}

let arena: Arena | undefined;
const built = new Map<string, Buffer>();

function regions(): string[] {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split(' ')[0]);
}

function openArena(): Arena {
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) {
    throw new KeyhubError('HSM_ERROR', 'PKCS#11 array attributes (unwrap templates) need Linux on a 64-bit CPU');
  }
  const before = new Set(regions());
  const memory = Buffer.allocUnsafeSlow(ARENA_BYTES);
  memory.fill(0, 0, ARENA_USABLE);
  randomFillSync(memory, 0, MARKER_BYTES);
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const probe = Buffer.alloc(MARKER_BYTES);
    for (const r of regions()) {
      if (before.has(r)) continue;
      const start = BigInt(`0x${r.split('-')[0]}`);
      // glibc puts a 16-byte chunk header before the data of an mmapped chunk; the others cover allocators that do not.
      for (const offset of [16n, 0n, 32n, 64n]) {
        try {
          readSync(fd, probe, 0, MARKER_BYTES, start + offset);
        } catch {
          continue;
        }
        if (probe.equals(memory.subarray(0, MARKER_BYTES))) return { memory, address: start + offset, used: MARKER_BYTES };
      }
    }
  } finally {
    closeSync(fd);
  }
  throw new KeyhubError('HSM_ERROR', 'cannot place PKCS#11 array attributes in memory (no mapping of their own)');
}

function place(a: Arena, value: Buffer): bigint {
  const at = Math.ceil(a.used / 8) * 8;
  if (at + value.length > ARENA_USABLE) throw new KeyhubError('INTERNAL', 'too many distinct PKCS#11 array attributes');
  value.copy(a.memory, at);
  a.used = at + value.length;
  return a.address + BigInt(at);
}

/**
 * The bytes of a CK_ATTRIBUTE[] for `attrs`, to be passed as the value of an
 * array attribute. `cacheKey` names the template; the same key returns the
 * same bytes (their inner pointers stay valid for the process).
 */
export function attributeArray(cacheKey: string, attrs: RawAttribute[]): Buffer {
  const cached = built.get(cacheKey);
  if (cached) return cached;
  arena ??= openArena();
  const out = Buffer.alloc(CK_ATTRIBUTE_SIZE * attrs.length);
  attrs.forEach((attr, i) => {
    out.writeBigUInt64LE(BigInt(attr.type), CK_ATTRIBUTE_SIZE * i);
    out.writeBigUInt64LE(place(arena!, attr.value), CK_ATTRIBUTE_SIZE * i + 8);
    out.writeBigUInt64LE(BigInt(attr.value.length), CK_ATTRIBUTE_SIZE * i + 16);
  });
  built.set(cacheKey, out);
  return out;
}

/** A CK_ULONG as the token reads it (little-endian on the platforms above). */
export function ulong(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
}
