import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A root KEK ceremony the hub announced (its signed `root_kek_ceremony`
 * message, as received): kept in the home until the custodians have entered
 * their parts and the hub has the confirmation. It holds KCVs and names,
 * never key material; whoever reads it still verifies it against the pinned
 * hub key.
 */
export class CeremonyStore {
  constructor(private readonly home: string) {}

  private get path(): string {
    return join(this.home, 'root-kek-ceremony.json');
  }

  save(envelopeBytes: Uint8Array): void {
    writeFileSync(`${this.path}.tmp`, envelopeBytes, { mode: 0o600 });
    renameSync(`${this.path}.tmp`, this.path);
  }

  load(): Buffer | undefined {
    return existsSync(this.path) ? readFileSync(this.path) : undefined;
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}
