import { readFileSync } from 'node:fs';
import { KeyhubError } from './errors';

/** Where a secret (PIN, password) comes from: never a command-line argument, which `ps` shows. */
export interface SecretSource {
  env?: string;
  file?: string;
}

export function readSecret(source: SecretSource, what: string): string {
  if (source.env) {
    const value = process.env[source.env];
    if (value !== undefined && value !== '') return value;
  }
  if (source.file) {
    try {
      const value = readFileSync(source.file, 'utf8').replace(/\r?\n$/, '');
      if (value !== '') return value;
    } catch (err) {
      throw new KeyhubError('CONFIG_INVALID', `cannot read ${what} from file ${source.file}`, { cause: err });
    }
  }
  const where = [source.env && `environment variable ${source.env}`, source.file && `file ${source.file}`].filter(Boolean).join(' or ');
  throw new KeyhubError('HSM_PIN_MISSING', `no ${what} found${where ? ` in ${where}` : ': configure pinEnv or pinFile'}`);
}

/** Overwrites a buffer that held secret bytes; call in `finally`. */
export function wipe(...buffers: Array<Buffer | Uint8Array | undefined>): void {
  for (const b of buffers) b?.fill(0);
}
