import { corrupt } from './der';

/**
 * Big-endian reads over a keystore file's bytes (JCEKS and the Java
 * serialization inside it), each bounds-checked: reading past the end is a
 * corrupt file (`what` names it in the error), never an exception of
 * Buffer's.
 */
export class ByteReader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    private readonly what: string,
  ) {}

  need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) throw corrupt(`${this.what} truncated`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    return this.buf.readUInt16BE((this.pos += 2) - 2);
  }
  u32(): number {
    this.need(4);
    return this.buf.readUInt32BE((this.pos += 4) - 4);
  }
  i32(): number {
    this.need(4);
    return this.buf.readInt32BE((this.pos += 4) - 4);
  }
  /** Moves past `n` bytes the caller does not need. */
  advance(n: number): void {
    this.need(n);
    this.pos += n;
  }
  /** Java's modified-UTF-8 string as DataOutput.writeUTF writes it: a 2-byte length, then the bytes. */
  utf(): string {
    const len = this.u16();
    this.need(len);
    return this.buf.toString('utf8', this.pos, (this.pos += len));
  }
}
