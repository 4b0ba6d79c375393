import { KeyhubError } from '@keyhub/shared';
import { readIfExists, writeFileAtomic } from './atomic-write';
import { ClearBytes } from './clear-bytes';
import { checkEntryInput } from './entry-checks';
import { JceksStore } from './jceks-store';
import type { FormatSettings, KeystoreFormat } from './keystore-format';
import { checkAlias, checkIterations, checkPassword, KEYSTORE_DEFAULTS, type KeystoreEntryInfo, type KeystoreEntryInput, type KeystoreOptions } from './keystore-types';
import { Pkcs12Store } from './pkcs12-store';

export interface CommitResult {
  readonly written: boolean;
  readonly added: number;
  readonly removed: number;
  readonly entries: number;
}

const inputBytes = (entry: KeystoreEntryInput): Buffer => (entry.kind === 'secretKey' ? entry.key : entry.pkcs8);

function settingsOf(options: KeystoreOptions): FormatSettings {
  checkPassword(options.password);
  return {
    password: options.password,
    pkcs12KeyIterations: checkIterations('pkcs12KeyIterations', options.pkcs12KeyIterations ?? KEYSTORE_DEFAULTS.pkcs12KeyIterations),
    pkcs12MacIterations: checkIterations('pkcs12MacIterations', options.pkcs12MacIterations ?? KEYSTORE_DEFAULTS.pkcs12MacIterations),
    jceksIterations: checkIterations('jceksIterations', options.jceksIterations ?? KEYSTORE_DEFAULTS.jceksIterations),
  };
}

/**
 * A Java keystore (PKCS#12 or JCEKS) that Keyhub writes. Changes are staged
 * with put() and remove() and written by commit() as one atomic rewrite, so a
 * backlog of imports costs one rewrite, and only the new entries are
 * protected: existing entries are re-emitted byte for byte. Opening checks
 * the file's MAC or keyed hash, so a wrong password never leads to a rewrite.
 * Clear key bytes handed to put() are zero-filled when the commit() that
 * takes them (or discard()) ends, whatever the outcome: a failed commit is
 * retried with freshly unwrapped keys. Commits run one at a time; what is
 * staged while one runs waits for the next.
 */
export class KeystoreFile {
  private staged = new Map<string, KeystoreEntryInput>();
  private removals = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly path: string,
    private format: KeystoreFormat,
    private readonly onWiped?: (wiped: readonly Buffer[]) => void,
  ) {}

  static async open(path: string, options: KeystoreOptions): Promise<KeystoreFile> {
    const settings = settingsOf(options);
    const bytes = await readIfExists(path);
    const store = options.type === 'pkcs12' ? Pkcs12Store : JceksStore;
    let format: KeystoreFormat;
    try {
      format = bytes === undefined ? store.empty(settings) : store.parse(bytes, settings);
    } catch (err) {
      throw KeyhubError.is(err) ? err : new KeyhubError('KEYSTORE_CORRUPT', 'keystore could not be parsed', { cause: err });
    }
    return new KeystoreFile(path, format, options.onWiped);
  }

  /** The entries the file will hold after commit(): what it holds now, with staged changes applied. */
  list(): KeystoreEntryInfo[] {
    const current = this.format.list().filter((e) => !this.removals.has(e.alias) && !this.staged.has(e.alias));
    return [...current, ...[...this.staged.values()].map((e) => ({ alias: e.alias, kind: e.kind }))];
  }

  /** Stages entries, all or none; an alias already in the file is replaced. The buffers are taken into custody, refused ones too. */
  put(entries: readonly KeystoreEntryInput[]): void {
    try {
      const seen = new Set<string>();
      for (const entry of entries) {
        checkAlias(entry.alias);
        if (seen.has(entry.alias) || this.staged.has(entry.alias)) throw new KeyhubError('KEYSTORE_ALIAS_INVALID', 'alias staged twice in one write', { details: { alias: entry.alias } });
        seen.add(entry.alias);
        checkEntryInput(entry);
      }
    } catch (err) {
      this.wipeEntries(entries);
      throw err;
    }
    for (const entry of entries) {
      this.staged.set(entry.alias, entry);
      this.removals.delete(entry.alias);
    }
  }

  remove(aliases: readonly string[]): void {
    for (const alias of aliases) {
      checkAlias(alias);
      const dropped = this.staged.get(alias);
      if (dropped) this.wipeEntries([dropped]);
      this.staged.delete(alias);
      this.removals.add(alias);
    }
  }

  /** Writes what is staged now as one atomic rewrite; nothing staged, nothing written. */
  commit(): Promise<CommitResult> {
    const added = [...this.staged.values()];
    const removals = this.removals;
    this.staged = new Map();
    this.removals = new Set();
    const run = this.queue.then(() => this.write(added, removals));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async write(added: readonly KeystoreEntryInput[], removals: ReadonlySet<string>): Promise<CommitResult> {
    const clear = new ClearBytes(this.onWiped);
    for (const entry of added) clear.hold(inputBytes(entry));
    try {
      const present = new Set(this.format.list().map((e) => e.alias));
      const removed = new Set([...removals].filter((a) => present.has(a)));
      if (added.length === 0 && removed.size === 0) return { written: false, added: 0, removed: 0, entries: present.size };
      const next = await this.format.withChanges(added, removed, clear);
      await writeFileAtomic(this.path, next.serialize());
      this.format = next;
      return { written: true, added: added.length, removed: removed.size, entries: next.list().length };
    } finally {
      clear.wipe();
    }
  }

  /** Drops staged changes and wipes the clear bytes they held. */
  discard(): void {
    this.wipeEntries([...this.staged.values()]);
    this.staged = new Map();
    this.removals = new Set();
  }

  private wipeEntries(entries: readonly KeystoreEntryInput[]): void {
    const clear = new ClearBytes(this.onWiped);
    for (const entry of entries) clear.hold(inputBytes(entry));
    clear.wipe();
  }
}
