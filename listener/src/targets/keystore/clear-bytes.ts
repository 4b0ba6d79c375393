/**
 * Custody of the buffers that hold clear key material during one keystore
 * write: the caller's key bytes, the PKCS#8 and Java-serialized encodings
 * built from them, the password bytes and the PBE keys derived from them.
 * Everything held is zero-filled once the write is over, whether it
 * succeeded or not, so clear bytes live only for the write (issue 12,
 * item 3). What OpenSSL copies into its own cipher contexts is out of our
 * reach; Node frees those contexts.
 */
export class ClearBytes {
  private readonly held: Buffer[] = [];

  /** `onWiped` sees every buffer right after it was zero-filled (tests check them). */
  constructor(private readonly onWiped?: (wiped: readonly Buffer[]) => void) {}

  /** Takes a buffer into custody and returns it, so calls can be inlined. */
  hold<T extends Buffer>(buf: T): T {
    this.held.push(buf);
    return buf;
  }

  /** Zero-fills every buffer held so far and forgets them. */
  wipe(): void {
    const wiped = this.held.splice(0);
    for (const buf of wiped) buf.fill(0);
    this.onWiped?.(wiped);
  }
}
