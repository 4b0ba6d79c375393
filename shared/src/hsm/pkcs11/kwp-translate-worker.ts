/**
 * Worker thread of KwpTranslator: runs whole translations (unwrap KEKs and
 * keys, wrap every pair, destroy them all) with synchronous PKCS#11 calls on
 * its own session. The module is the one the main thread loaded and
 * initialized (a second dlopen of a library shares its state), so the
 * session is logged in already and sees the main thread's session objects,
 * such as the master key's copy. Only wrapped blobs and object handles pass
 * through here, never a clear key.
 *
 * Why a thread and synchronous calls: each async pkcs11js call hands its
 * work to a libuv thread and back. Measured against SoftHSM2 on these
 * machines, that hand-off costs more CPU than the call itself: an unwrap
 * into a session object 90-150 µs async against ~50 µs synchronous, a wrap
 * 26-50 µs against ~16 µs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as pkcs11js from 'pkcs11js';
import type { TranslateReply, TranslateRequest, WorkerBlob, WorkerFailure, WorkerInit, WorkerReady } from './kwp-translate-messages';
import { pairAt, planTranslation, TRANSIENT_KEK_POLICY, TRANSIENT_KEY_POLICY } from './kwp-translation-plan';
import { verifyHmacSha256Sync } from './signing';
import { aesUnwrapTemplate, isPrivateKeyType, unwrapTemplateFor } from './templates';
import type { WrappedKeyType } from '../hsm';

const P = pkcs11js;

interface Templates {
  kek: pkcs11js.Template;
  key: pkcs11js.Template;
  /** Keys of other types than AES, built on first use (the AES path stays as it was). */
  byType: Map<WrappedKeyType, pkcs11js.Template>;
  kwpMechanism: number;
}

function main(): void {
  const port = parentPort;
  if (!port) return;
  const init = workerData as WorkerInit;
  const lib = new P.PKCS11();
  let session: Buffer;
  try {
    lib.load(init.module);
    try {
      lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
    } catch (err) {
      // Expected: the main thread initialized the module. Never finalized here: that would end it for the process.
      if (!(err instanceof P.Pkcs11Error) || err.code !== P.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err;
    }
    session = lib.C_OpenSession(Buffer.from(init.slot), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  } catch (err) {
    port.postMessage({ type: 'ready', error: describe(err, 'C_OpenSession') } satisfies WorkerReady);
    lib.close();
    return;
  }
  port.postMessage({ type: 'ready', session: Buffer.from(session) } satisfies WorkerReady);

  const mechanism = { mechanism: init.kwpMechanism };
  const templates: Templates = {
    kek: aesUnwrapTemplate(TRANSIENT_KEK_POLICY, init.kwpMechanism),
    key: aesUnwrapTemplate(TRANSIENT_KEY_POLICY, init.kwpMechanism),
    byType: new Map(),
    kwpMechanism: init.kwpMechanism,
  };
  const output = Buffer.alloc(4096);
  port.on('message', (msg: TranslateRequest | { type: 'close' }) => {
    if (msg.type === 'close') {
      try {
        lib.C_CloseSession(session);
      } catch {
        // Gone already with the token or the module: nothing left to close.
      }
      lib.close();
      port.close();
      return;
    }
    const reply = translate(lib, session, mechanism, templates, output, msg);
    port.postMessage(reply, 'bytes' in reply ? [reply.bytes, reply.lengths] : []);
  });
}

/**
 * Every blob's MAC, in the token, before anything is unwrapped: a row moved
 * or altered in the database never reaches C_UnwrapKey. ~17 µs per blob,
 * measured here, against ~50 µs for the unwrap it guards.
 */
function verifyMacs(lib: pkcs11js.PKCS11, session: Buffer, req: TranslateRequest): WorkerFailure | undefined {
  if (!req.macKey) return undefined;
  const macKey = Buffer.from(req.macKey);
  const sides: Array<['kek' | 'key', WorkerBlob[]]> = [
    ['kek', req.keks],
    ['key', req.keys],
  ];
  for (const [side, blobs] of sides) {
    for (let index = 0; index < blobs.length; index++) {
      const mac = blobs[index].mac;
      if (!mac || !verifyHmacSha256Sync(lib, session, macKey, Buffer.from(mac.data), Buffer.from(mac.tag))) {
        return { fn: 'C_Verify', macInvalid: { side, index }, message: `${side} ${index}: MAC ${mac ? 'does not verify' : 'missing'}` };
      }
    }
  }
  return undefined;
}

function translate(lib: pkcs11js.PKCS11, session: Buffer, mechanism: pkcs11js.Mechanism, templates: Templates, output: Buffer, req: TranslateRequest): TranslateReply {
  const created = new Set<Buffer>();
  const unwrappingKey = Buffer.from(req.unwrappingKey);
  const kekUnwrappingKey = Buffer.from(req.kekUnwrappingKey);
  const unwrap = (b: WorkerBlob, kek: boolean): Buffer => {
    const h =
      kek || b.keyType === undefined || b.keyType === 'aes'
        ? lib.C_UnwrapKey(session, mechanism, kek ? kekUnwrappingKey : unwrappingKey, Buffer.from(b.blob), kek ? templates.kek : templates.key)
        : unwrapOtherType(lib, session, mechanism, templates, req, b.keyType, b.blob);
    created.add(h);
    return h;
  };
  const destroy = (h: Buffer): void => {
    created.delete(h);
    lib.C_DestroyObject(session, h);
  };
  let step = 'C_Verify';
  try {
    const refused = verifyMacs(lib, session, req);
    if (refused) return { type: 'translated', id: req.id, error: refused };
    step = 'C_UnwrapKey';
    const n = req.pairs.length / 2;
    const { streamKeks, groups } = planTranslation(req.keks.length, req.keys.length, req.pairs);
    const resident = (streamKeks ? req.keys : req.keks).map((k) => unwrap(k, !streamKeks));
    const parts = new Array<Buffer>(n);
    for (const group of groups) {
      step = 'C_UnwrapKey';
      const streamed = unwrap((streamKeks ? req.keks : req.keys)[group.streamed], streamKeks);
      step = 'C_WrapKey';
      for (const i of group.pairs) {
        const { kek, key } = pairAt(req.pairs, i);
        const blob = streamKeks ? lib.C_WrapKey(session, mechanism, streamed, resident[key], output) : lib.C_WrapKey(session, mechanism, resident[kek], streamed, output);
        parts[i] = Buffer.from(blob);
      }
      step = 'C_DestroyObject';
      destroy(streamed);
    }
    step = 'C_DestroyObject';
    for (const h of resident) destroy(h);
    const lengthBytes = new ArrayBuffer(4 * n);
    const lengths = new Uint32Array(lengthBytes);
    let total = 0;
    for (let i = 0; i < n; i++) {
      lengths[i] = parts[i].length;
      total += parts[i].length;
    }
    const blobs = Buffer.concat(parts, total);
    // A fresh ArrayBuffer of exactly the blobs, handed over without a copy.
    const bytes = blobs.buffer.slice(blobs.byteOffset, blobs.byteOffset + blobs.length);
    return { type: 'translated', id: req.id, bytes, lengths: lengthBytes };
  } catch (err) {
    destroyAll(lib, session, [...created]);
    return { type: 'translated', id: req.id, error: describe(err, step) };
  }
}

/** A TDES, generic or private key version: under its own store, with its own template (key-classes.ts). */
function unwrapOtherType(lib: pkcs11js.PKCS11, session: Buffer, mechanism: pkcs11js.Mechanism, templates: Templates, req: TranslateRequest, keyType: WrappedKeyType, blob: Uint8Array): Buffer {
  const store = isPrivateKeyType(keyType) ? req.privateUnwrappingKey : req.secretUnwrappingKey;
  if (!store) throw new Error(`no store for ${keyType} keys was given`);
  let template = templates.byType.get(keyType);
  if (!template) {
    template = unwrapTemplateFor(keyType, TRANSIENT_KEY_POLICY, templates.kwpMechanism);
    templates.byType.set(keyType, template);
  }
  return lib.C_UnwrapKey(session, mechanism, Buffer.from(store), Buffer.from(blob), template);
}

function destroyAll(lib: pkcs11js.PKCS11, session: Buffer, handles: Buffer[]): void {
  for (const h of handles) {
    try {
      lib.C_DestroyObject(session, h);
    } catch {
      // Gone already, or the session is: session objects end with it anyway.
    }
  }
}

function describe(err: unknown, fn: string): { fn: string; code?: number; message: string } {
  if (err instanceof P.Pkcs11Error) return { fn, code: err.code, message: err.message };
  return { fn, message: err instanceof Error ? err.message : String(err) };
}

main();
