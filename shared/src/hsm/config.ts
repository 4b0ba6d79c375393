import { existsSync } from 'node:fs';
import { z } from 'zod';

/** Where to find a token. Every module path is configuration: nothing assumes SoftHSM. */
export const hsmConfigSchema = z.strictObject({
  module: z.string().min(1),
  tokenLabel: z.string().min(1).max(32),
  pinEnv: z.string().optional(),
  pinFile: z.string().optional(),
  /** Sessions in the pool: one per in-flight operation (SoftHSM fails two concurrent calls on one session). */
  sessions: z.number().int().min(1).max(64).default(4),
  /**
   * CKM code for RFC 5649 key wrap with padding: 0x210A in SoftHSM2 (its
   * CKM_AES_KEY_WRAP_PAD), 0x210B (CKM_AES_KEY_WRAP_KWP) in PKCS#11 3.x HSMs.
   */
  kwpMechanism: z.number().int().default(0x210a),
  /**
   * Runs batch re-wrapping (`translateKwp`, the hub's package issuing) on a
   * worker thread with synchronous calls on its own session; false runs it
   * with async calls on the pool. The thread is much cheaper in CPU (see
   * pkcs11/kwp-translate-worker.ts); false is for modules that cannot be loaded
   * twice in one process.
   */
  translateWorker: z.boolean().default(true),
});
export type HsmConfig = z.infer<typeof hsmConfigSchema>;
export type HsmConfigInput = z.input<typeof hsmConfigSchema>;

/** The first SoftHSM2 module found on this machine, as a default for development setups only. */
export function defaultPkcs11Module(): string {
  const candidates = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'];
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
}
