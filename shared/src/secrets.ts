import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { KeyhubError } from './errors';

/** Where a secret (PIN, password) comes from: never a command-line argument, which `ps` shows. */
export interface SecretSource {
  env?: string;
  file?: string;
}

/**
 * Group and other permission bits: a secret file or a directory of secrets
 * with any of them set is readable (or replaceable) by someone besides its
 * owner.
 */
export const NOT_OWNER_ONLY = 0o077;

/** Refuses a secret file that is not owner-only (SECRET_FILE_PERMISSIONS), naming the mode it has. */
export function assertOwnerOnly(mode: number, what: string, path: string): void {
  if ((mode & NOT_OWNER_ONLY) !== 0) {
    throw new KeyhubError('SECRET_FILE_PERMISSIONS', `${what} file ${path} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}; it must be accessible to its owner only (chmod 0600 or 0400)`);
  }
}

/**
 * Reads a secret from an environment variable or a file. A file must be a
 * regular file accessible to its owner only: a PIN that every local user can
 * read is no PIN, so such a file is refused rather than used. Mode and
 * content come from the same open file, so the check cannot be raced by
 * swapping the path in between.
 */
export function readSecret(source: SecretSource, what: string): string {
  if (source.env) {
    const value = process.env[source.env];
    if (value !== undefined && value !== '') return value;
  }
  if (source.file) {
    let fd: number;
    try {
      fd = openSync(source.file, 'r');
    } catch (err) {
      throw new KeyhubError('CONFIG_INVALID', `cannot read ${what} from file ${source.file}`, { cause: err });
    }
    let value: string;
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new KeyhubError('CONFIG_INVALID', `${what} file ${source.file} is not a regular file`);
      assertOwnerOnly(st.mode, what, source.file);
      value = readFileSync(fd, 'utf8').replace(/\r?\n$/, '');
    } finally {
      closeSync(fd);
    }
    if (value !== '') return value;
  }
  const where = [source.env && `environment variable ${source.env}`, source.file && `file ${source.file}`].filter(Boolean).join(' or ');
  throw new KeyhubError('HSM_PIN_MISSING', `no ${what} found${where ? ` in ${where}` : ': configure pinEnv or pinFile'}`);
}

/** Overwrites a buffer that held secret bytes; call in `finally`. */
export function wipe(...buffers: Array<Buffer | Uint8Array | undefined>): void {
  for (const b of buffers) b?.fill(0);
}
