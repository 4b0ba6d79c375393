/**
 * Every buffer a TR-31 operation fills with clear key bytes or keys derived
 * from the KBPK is taken through one of these and zero-filled when the
 * operation ends, whether it succeeded or threw. What it cannot reach: the
 * copies OpenSSL keeps inside a cipher context (freed, not wiped, when the
 * context is collected) and the caller's own key and KBPK buffers, which the
 * caller owns and wipes. Tests pass a subclass to see what was held.
 */
export class Tr31Secrets {
  private held: Buffer[] = [];

  /** Takes a buffer that holds secret bytes; it is wiped by `wipe()`. */
  hold<T extends Buffer>(buffer: T): T {
    this.held.push(buffer);
    return buffer;
  }

  alloc(size: number): Buffer {
    return this.hold(Buffer.alloc(size));
  }

  wipe(): void {
    for (const buffer of this.held) buffer.fill(0);
    this.held = [];
  }
}

/** Zero-fills buffers the caller owns, e.g. the key `unwrapTr31` returned, once it is imported. */
export function wipeBuffers(...buffers: Buffer[]): void {
  for (const buffer of buffers) buffer.fill(0);
}
