import type { ClearBytes } from './clear-bytes';
import type { KeystoreEntryInfo, KeystoreEntryInput } from './keystore-types';

/** Settings a format needs to protect and seal entries (password already checked). */
export interface FormatSettings {
  readonly password: string;
  readonly pkcs12KeyIterations: number;
  readonly pkcs12MacIterations: number;
  readonly jceksIterations: number;
}

/**
 * One keystore file format, immutable: a rewrite builds a new value that
 * keeps the existing entries' bytes and adds freshly protected ones, and the
 * file object adopts it only once the write succeeded.
 */
export interface KeystoreFormat {
  list(): KeystoreEntryInfo[];
  /** Drops `removed` aliases (and the aliases being replaced), protects `added`. */
  withChanges(added: readonly KeystoreEntryInput[], removed: ReadonlySet<string>, clear: ClearBytes): Promise<KeystoreFormat>;
  serialize(): Buffer;
}
