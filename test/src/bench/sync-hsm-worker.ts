/**
 * Bench worker thread: wrap+sign per package with synchronous pkcs11js calls
 * on its own session, the way the hub's translateKwp worker drives the token.
 * The main thread loaded and logged in the module; the handles are its
 * session objects. Runs for `ms` and reports how many packages it did.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as pkcs11js from 'pkcs11js';

export interface SyncHsmWorkerInput {
  module: string;
  slot: Uint8Array;
  kwpMechanism: number;
  kek: Uint8Array;
  key: Uint8Array;
  signingKey: Uint8Array;
  digest: Uint8Array;
  /** Waits for a 'go' message, then runs this long. */
  ms: number;
}

function main(): void {
  const port = parentPort;
  if (!port) return;
  const input = workerData as SyncHsmWorkerInput;
  const P = pkcs11js;
  const lib = new P.PKCS11();
  lib.load(input.module);
  try {
    lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (!(err instanceof P.Pkcs11Error) || err.code !== P.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err;
  }
  const session = lib.C_OpenSession(Buffer.from(input.slot), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  const kek = Buffer.from(input.kek);
  const key = Buffer.from(input.key);
  const signingKey = Buffer.from(input.signingKey);
  const digest = Buffer.from(input.digest);
  const wrapOut = Buffer.alloc(4096);
  const sigOut = Buffer.alloc(128);
  const pkg = (): void => {
    lib.C_WrapKey(session, { mechanism: input.kwpMechanism }, kek, key, wrapOut);
    lib.C_SignInit(session, { mechanism: P.CKM_ECDSA }, signingKey);
    lib.C_Sign(session, digest, sigOut);
  };
  for (let i = 0; i < 100; i++) pkg();
  port.postMessage({ type: 'ready' });
  port.once('message', () => {
    const t0 = performance.now();
    let ops = 0;
    while (performance.now() - t0 < input.ms) {
      for (let i = 0; i < 50; i++) pkg();
      ops += 50;
    }
    const ms = performance.now() - t0;
    lib.C_CloseSession(session);
    lib.close();
    port.postMessage({ type: 'done', ops, ms });
  });
}

main();
