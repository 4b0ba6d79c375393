import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import { ckrName, hsmError } from './errors';

const P = pkcs11js;

/**
 * C_Initialize must happen once per process and module; several Pkcs11Hsm
 * instances (one per token) share the loaded module and finalize it when the
 * last one closes.
 */
const loadedModules = new Map<string, { lib: pkcs11js.PKCS11; users: number }>();

export function acquireModule(path: string): pkcs11js.PKCS11 {
  const existing = loadedModules.get(path);
  if (existing) {
    existing.users++;
    return existing.lib;
  }
  const lib = new P.PKCS11();
  try {
    lib.load(path);
  } catch (err) {
    throw new KeyhubError('HSM_MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${path}`, { cause: err });
  }
  try {
    lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw hsmError(err, 'C_Initialize');
  }
  loadedModules.set(path, { lib, users: 1 });
  return lib;
}

export function releaseModule(path: string): void {
  const entry = loadedModules.get(path);
  if (!entry) return;
  entry.users--;
  if (entry.users > 0) return;
  loadedModules.delete(path);
  try {
    entry.lib.C_Finalize();
  } catch {
    // Finalizing at shutdown: nothing useful to do with a failure.
  }
  entry.lib.close();
}

export function findSlot(lib: pkcs11js.PKCS11, label: string): Buffer {
  const slots = lib.C_GetSlotList(true);
  for (const slot of slots) {
    if (lib.C_GetTokenInfo(slot).label.trim() === label) return slot;
  }
  throw new KeyhubError('HSM_TOKEN_NOT_FOUND', `no token labelled "${label}" (${slots.length} tokens present)`);
}

/**
 * Opens `count` read-write sessions on the token labelled `label` and logs
 * them in. Nothing is left open if any step fails.
 */
export function openLoggedInSessions(lib: pkcs11js.PKCS11, label: string, count: number, pin: string): { slot: Buffer; sessions: Buffer[] } {
  const sessions: Buffer[] = [];
  try {
    const slot = findSlot(lib, label);
    const flags = P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION;
    for (let i = 0; i < count; i++) sessions.push(lib.C_OpenSession(slot, flags));
    try {
      // Login is per application and token: one session logs in all of them. A second
      // instance for an already logged-in token therefore cannot re-check its PIN.
      lib.C_Login(sessions[0], P.CKU_USER, pin);
    } catch (err) {
      if (ckrName(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw hsmError(err, 'C_Login');
    }
    return { slot, sessions };
  } catch (err) {
    for (const s of sessions) closeQuietly(lib, s);
    throw err;
  }
}

export function closeQuietly(lib: pkcs11js.PKCS11, session: Buffer): void {
  try {
    lib.C_CloseSession(session);
  } catch {
    // The session may already be gone with the token; nothing to recover.
  }
}
