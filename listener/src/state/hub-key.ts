import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publicKeyFingerprint } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';

/**
 * The hub's signing key, learned from the first root KEK message and accepted
 * only if it matches the fingerprint pinned at install time.
 */
export class HubKeyStore {
  /** Read and checked once: every package is verified against it. */
  private cached?: Buffer;

  constructor(
    private readonly home: string,
    private readonly pinnedFingerprint: string,
  ) {}

  private get path(): string {
    return join(this.home, 'hub-key.der');
  }

  load(): Buffer | undefined {
    if (this.cached) return this.cached;
    if (!existsSync(this.path)) return undefined;
    const der = readFileSync(this.path);
    this.assertPinned(der);
    this.cached = der;
    return der;
  }

  save(der: Buffer): void {
    this.assertPinned(der);
    writeFileSync(`${this.path}.tmp`, der, { mode: 0o600 });
    renameSync(`${this.path}.tmp`, this.path);
    this.cached = der;
  }

  assertPinned(der: Buffer): void {
    const actual = publicKeyFingerprint(der);
    if (actual.replace(/-/g, '') !== this.pinnedFingerprint.toLowerCase().replace(/[^0-9a-f]/g, '')) {
      throw new KeyhubError('HUB_KEY_NOT_PINNED', `hub key ${actual} is not the pinned hub key`);
    }
  }
}
