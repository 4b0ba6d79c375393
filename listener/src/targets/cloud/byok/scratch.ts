/**
 * Every buffer that holds key material or an ephemeral key during an
 * in-memory wrap is registered here and zeroed in one place, also when the
 * wrap throws. Tests pass their own instance to check that nothing is left.
 * (OpenSSL's own copies inside node:crypto are beyond our reach; they are
 * freed, not kept, once each call returns.)
 */
export class ScratchBuffers {
  private readonly held: Buffer[] = [];

  hold(buf: Buffer): Buffer {
    this.held.push(buf);
    return buf;
  }

  wipe(): void {
    for (const b of this.held) b.fill(0);
  }

  /** For tests: the buffers registered so far. */
  get buffers(): readonly Buffer[] {
    return this.held;
  }
}
