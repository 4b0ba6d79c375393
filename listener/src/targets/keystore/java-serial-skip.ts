import { ByteReader } from './byte-reader';
import { corrupt } from './der';

/**
 * Finds where one Java-serialized object ends. A JCEKS secret-key entry is a
 * serialized SealedObject with no length in front of it, so keeping such an
 * entry byte for byte on rewrite needs a walk over the stream grammar (Java
 * Object Serialization Specification, 6.4). Only structure is read, nothing
 * is decrypted or instantiated; anything outside the grammar is corrupt.
 */
const TC = {
  NULL: 0x70,
  REFERENCE: 0x71,
  CLASSDESC: 0x72,
  OBJECT: 0x73,
  STRING: 0x74,
  ARRAY: 0x75,
  CLASS: 0x76,
  BLOCKDATA: 0x77,
  ENDBLOCKDATA: 0x78,
  LONGSTRING: 0x7c,
  PROXYCLASSDESC: 0x7d,
  ENUM: 0x7e,
} as const;
const SC = { WRITE_METHOD: 0x01, SERIALIZABLE: 0x02, EXTERNALIZABLE: 0x04, BLOCK_DATA: 0x08 } as const;
const PRIMITIVE_SIZE: Record<string, number> = { B: 1, Z: 1, C: 2, S: 2, I: 4, F: 4, J: 8, D: 8 };
const BASE_HANDLE = 0x7e0000;
const MAX_DEPTH = 32;

interface ClassDesc {
  readonly name: string;
  readonly flags: number;
  readonly fields: readonly string[]; // type codes
  readonly parent: ClassDesc | null;
}

class Walker extends ByteReader {
  private readonly handles: unknown[] = [];
  constructor(buf: Buffer, pos: number) {
    super(buf, pos, 'serialized object');
  }
  private lookup(): unknown {
    const h = this.u32() - BASE_HANDLE;
    if (h < 0 || h >= this.handles.length) throw corrupt('serialized reference out of range');
    return this.handles[h];
  }

  classDesc(depth: number): ClassDesc | null {
    const tc = this.u8();
    if (tc === TC.NULL) return null;
    if (tc === TC.REFERENCE) {
      const d = this.lookup();
      if (typeof d !== 'object' || d === null || !('fields' in d)) throw corrupt('reference is not a class descriptor');
      return d as ClassDesc;
    }
    if (tc !== TC.CLASSDESC) throw corrupt('unsupported class descriptor');
    const name = this.utf();
    this.advance(8); // serialVersionUID
    const slot = this.handles.push(undefined) - 1;
    const flags = this.u8();
    const fields: string[] = [];
    for (let n = this.u16(); n > 0; n--) {
      const code = String.fromCharCode(this.u8());
      this.utf();
      if (code === 'L' || code === '[') this.content(depth + 1);
      else if (!(code in PRIMITIVE_SIZE)) throw corrupt('unknown field type');
      fields.push(code);
    }
    this.annotations(depth);
    const desc: ClassDesc = { name, flags, fields, parent: null };
    this.handles[slot] = desc;
    return Object.assign(desc, { parent: this.classDesc(depth + 1) });
  }

  /** Block data and objects up to TC_ENDBLOCKDATA (class and object annotations). */
  annotations(depth: number): void {
    for (;;) {
      const tc = this.buf[this.pos];
      if (tc === TC.ENDBLOCKDATA) return void this.pos++;
      if (tc === TC.BLOCKDATA) {
        this.pos++;
        this.advance(this.u8());
      } else this.content(depth + 1);
    }
  }

  value(code: string, depth: number): void {
    if (code === 'L' || code === '[') this.content(depth + 1);
    else this.advance(PRIMITIVE_SIZE[code]);
  }

  content(depth: number): void {
    if (depth > MAX_DEPTH) throw corrupt('serialized object nested too deep');
    const tc = this.u8();
    switch (tc) {
      case TC.NULL:
        return;
      case TC.REFERENCE:
        return void this.lookup();
      case TC.STRING:
        this.handles.push('string');
        return void this.utf();
      case TC.LONGSTRING: {
        this.handles.push('string');
        const hi = this.u32();
        if (hi !== 0) throw corrupt('string too long');
        return this.advance(this.u32());
      }
      case TC.ARRAY: {
        const desc = this.classDesc(depth);
        if (!desc || !desc.name.startsWith('[')) throw corrupt('array without array class');
        this.handles.push('array');
        const element = desc.name[1];
        const count = this.u32();
        if (element in PRIMITIVE_SIZE) return this.advance(count * PRIMITIVE_SIZE[element]);
        for (let i = 0; i < count; i++) this.content(depth + 1);
        return;
      }
      case TC.OBJECT:
        return this.object(depth);
      default:
        throw corrupt(`unsupported serialization tag 0x${tc.toString(16)}`);
    }
  }

  object(depth: number): void {
    const desc = this.classDesc(depth);
    if (!desc) throw corrupt('object without class');
    this.handles.push('object');
    const chain: ClassDesc[] = [];
    for (let d: ClassDesc | null = desc; d; d = d.parent) chain.unshift(d);
    for (const d of chain) {
      if (d.flags & SC.EXTERNALIZABLE) {
        if (!(d.flags & SC.BLOCK_DATA)) throw corrupt('old externalizable format');
        this.annotations(depth);
        continue;
      }
      for (const code of d.fields) this.value(code, depth);
      if (d.flags & SC.WRITE_METHOD) this.annotations(depth);
    }
  }
}

/** Offset just past the stream header and one top-level object starting at `offset`. */
export function endOfSerializedObject(buf: Buffer, offset: number): number {
  if (offset + 4 > buf.length || buf.readUInt32BE(offset) !== 0xaced0005) throw corrupt('no Java serialization header');
  const walker = new Walker(buf, offset + 4);
  walker.content(0);
  return walker.pos;
}
