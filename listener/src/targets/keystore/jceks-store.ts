import type { ClearBytes } from './clear-bytes';
import { jceksPrivateEntry, jceksSecretEntry } from './jceks-entries';
import { parseJceks, serializeJceks, type JceksEntry } from './jceks-file';
import type { FormatSettings, KeystoreFormat } from './keystore-format';
import type { KeystoreEntryInfo, KeystoreEntryInput } from './keystore-types';

/** JCEKS: a flat list of entries, each kept as its exact bytes until removed or replaced. */
export class JceksStore implements KeystoreFormat {
  private constructor(
    private readonly entries: readonly JceksEntry[],
    private readonly settings: FormatSettings,
  ) {}

  static empty(settings: FormatSettings): JceksStore {
    return new JceksStore([], settings);
  }

  static parse(file: Buffer, settings: FormatSettings): JceksStore {
    return new JceksStore(parseJceks(file, settings.password), settings);
  }

  list(): KeystoreEntryInfo[] {
    return this.entries.map((e) => ({ alias: e.alias, kind: e.kind }));
  }

  async withChanges(added: readonly KeystoreEntryInput[], removed: ReadonlySet<string>, clear: ClearBytes): Promise<JceksStore> {
    const drop = new Set([...removed, ...added.map((e) => e.alias)]);
    const { password, jceksIterations: iterations } = this.settings;
    const fresh: JceksEntry[] = [];
    for (const e of added) {
      fresh.push(e.kind === 'secretKey' ? jceksSecretEntry(e, password, iterations, clear) : jceksPrivateEntry(e, password, iterations, clear));
      // The MD5 chains run on this thread (no native PBE for this scheme): let other work in between entries.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return new JceksStore([...this.entries.filter((e) => !drop.has(e.alias)), ...fresh], this.settings);
  }

  serialize(): Buffer {
    return serializeJceks(this.entries, this.settings.password);
  }
}
