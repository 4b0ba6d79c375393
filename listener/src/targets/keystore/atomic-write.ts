import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsConstants } from 'node:fs';
import * as path from 'node:path';
import { KeyhubError } from '@keyhub/shared';

/** Errors of the file system that mean "cannot write here", as opposed to a bug. */
const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST']);

function notWritable(file: string, err: unknown): KeyhubError {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'unknown';
  if (!NOT_WRITABLE.has(code)) return KeyhubError.from(err, 'INTERNAL', 'keystore write failed');
  return new KeyhubError('KEYSTORE_NOT_WRITABLE', `cannot write keystore ${path.basename(file)} (${code})`, { cause: err, details: { file, errno: code } });
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` with `data` so that a reader (or a crash) sees either the
 * old file or the new one, never a mix: a temp file in the same directory
 * (so rename is atomic), created 0600, fsynced, then the current file is
 * hard-linked to `file.bak` (the previous generation, kept for the operator)
 * and the temp file renamed over `file`; last the directory is fsynced so the
 * renames themselves survive a crash.
 */
export async function writeFileAtomic(file: string, data: Buffer): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await fs.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    created = true;
    try {
      await handle.writeFile(data);
      await handle.chmod(0o600);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await keepBackup(file);
    await fs.rename(temp, file);
    created = false;
    await fsyncDir(dir);
  } catch (err) {
    if (created) await fs.rm(temp, { force: true }).catch(() => undefined);
    throw notWritable(file, err);
  }
}

/** The current file becomes `file.bak` (replacing the older backup); nothing to do for a new keystore. */
async function keepBackup(file: string): Promise<void> {
  const backup = `${file}.bak`;
  try {
    await fs.rm(backup, { force: true });
    await fs.link(file, backup);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT' && !(await exists(file))) return;
    throw err;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** Reads the keystore, or undefined when there is none yet. */
export async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw notWritable(file, err);
  }
}
