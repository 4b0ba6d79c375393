import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as pkcs11js from 'pkcs11js';
import { KeyhubError } from '../../errors';
import type { KwpTranslation } from '../hsm';
import { checkKwpBlob, isPrivateKeyType } from './templates';
import type { TranslateReply, TranslateRequest, WorkerFailure, WorkerInit, WorkerReady } from './kwp-translate-messages';

/** What the translator needs of its token's adapter: error mapping and closing a worker's session. */
export interface TranslatorHost {
  readonly init: WorkerInit;
  toError(err: unknown, operation: string): KeyhubError;
  /** Closes a session a stopped worker left open; its session objects go with it. */
  closeSession(session: Buffer): void;
}

interface Running {
  thread: Worker;
  ready: Promise<void>;
  session?: Buffer;
  closing: boolean;
}

/**
 * Runs `Hsm.translateKwp` on one worker thread with its own PKCS#11 session
 * (see kwp-translate-worker.ts for why). Calls queue at the worker and run
 * one after another. The worker starts on first use, so commands that never
 * translate never pay for it; if it dies, the calls in flight fail with
 * HSM_ERROR, its session is closed (destroying whatever it had unwrapped)
 * and the next call starts a new one.
 */
export class KwpTranslator {
  private running?: Running;
  private readonly pending = new Map<number, { resolve: (blobs: Buffer[]) => void; reject: (err: KeyhubError) => void }>();
  private nextId = 1;
  /** Calls between their start and their reply (pending holds those already sent). */
  private active = 0;
  private closed = false;
  private onIdle?: () => void;

  constructor(private readonly host: TranslatorHost) {}

  async translate(t: KwpTranslation): Promise<Buffer[]> {
    if (this.closed) throw new KeyhubError('HSM_ERROR', 'translateKwp: HSM connection is closed');
    checkTranslation(t);
    const running = this.start();
    // Held from here until the reply: an idle worker must not keep the process alive, a busy
    // (or starting) one must, or a CLI whose only pending work is this call would exit.
    this.active++;
    running.thread.ref();
    try {
      await running.ready;
      const id = this.nextId++;
      const request: TranslateRequest = {
        type: 'translate',
        id,
        unwrappingKey: t.unwrappingKey,
        kekUnwrappingKey: t.kekUnwrappingKey ?? t.unwrappingKey,
        ...(t.macKey ? { macKey: t.macKey } : {}),
        ...(t.secretUnwrappingKey ? { secretUnwrappingKey: t.secretUnwrappingKey } : {}),
        ...(t.privateUnwrappingKey ? { privateUnwrappingKey: t.privateUnwrappingKey } : {}),
        keks: t.keks.map((k) => ({ blob: k.blob, ...(k.mac ? { mac: k.mac } : {}) })),
        keys: t.keys.map((k) => ({ blob: k.blob, ...(k.keyType && k.keyType !== 'aes' ? { keyType: k.keyType } : {}), ...(k.mac ? { mac: k.mac } : {}) })),
        pairs: t.pairs,
      };
      return await new Promise<Buffer[]>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        running.thread.postMessage(request);
      });
    } finally {
      this.active--;
      this.idle(running);
    }
  }

  /** Stops the worker after the calls in flight; its session closes with it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const running = this.running;
    if (!running) return;
    while (this.active > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
    running.closing = true;
    const exited = new Promise<void>((resolve) => running.thread.once('exit', () => resolve()));
    running.thread.postMessage({ type: 'close' });
    const timer = setTimeout(() => void running.thread.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }

  private start(): Running {
    if (this.running) return this.running;
    const thread = new Worker(join(__dirname, 'kwp-translate-worker.js'), { workerData: this.host.init });
    const running: Running = { thread, closing: false, ready: Promise.resolve() };
    running.ready = new Promise<void>((resolve, reject) => {
      thread.once('message', (msg: WorkerReady) => {
        if ('error' in msg) {
          reject(this.failure(msg.error));
          return;
        }
        running.session = Buffer.from(msg.session);
        thread.on('message', (reply: TranslateReply) => this.settle(reply));
        resolve();
      });
      thread.once('exit', () => reject(new KeyhubError('HSM_ERROR', 'translateKwp: the HSM worker thread stopped before it was ready')));
    });
    running.ready.catch(() => undefined);
    thread.on('error', () => {
      // Reported through 'exit', which always follows.
    });
    thread.once('exit', (code) => {
      if (this.running === running) this.running = undefined;
      if (running.session && !running.closing) this.host.closeSession(running.session);
      const err = new KeyhubError('HSM_ERROR', `translateKwp: the HSM worker thread stopped (exit code ${code})`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    thread.unref();
    this.running = running;
    return running;
  }

  private settle(reply: TranslateReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if ('error' in reply) {
      p.reject(this.failure(reply.error));
      return;
    }
    const all = Buffer.from(reply.bytes);
    const blobs: Buffer[] = [];
    let at = 0;
    for (const len of new Uint32Array(reply.lengths)) {
      blobs.push(all.subarray(at, at + len));
      at += len;
    }
    p.resolve(blobs);
  }

  private idle(running: Running): void {
    if (this.active > 0) return;
    running.thread.unref();
    // A call that outlived its worker ends here: the worker started since must not stay held either.
    this.running?.thread.unref();
    const wake = this.onIdle;
    this.onIdle = undefined;
    wake?.();
  }

  private failure(f: WorkerFailure): KeyhubError {
    if (f.macInvalid) return macInvalid(f.macInvalid.side, f.macInvalid.index);
    const cause = f.code === undefined ? new Error(f.message) : new pkcs11js.Pkcs11Error(f.message, f.code, f.fn);
    return this.host.toError(cause, f.fn);
  }
}

/** A blob whose MAC is missing or does not verify: nothing of the call was unwrapped. */
export function macInvalid(side: 'kek' | 'key', index: number): KeyhubError {
  return new KeyhubError('ROW_MAC_INVALID', `translateKwp: the MAC of ${side} ${index} is missing or does not verify; nothing was unwrapped`, { details: { side, index } });
}

/** The checks `unwrapKwp` makes, for every blob, and every pair in range; before anything reaches the token. */
export function checkTranslation(t: KwpTranslation): void {
  for (const k of t.keks) {
    if (k.keyType !== undefined && k.keyType !== 'aes') throw new KeyhubError('INPUT_INVALID', 'translateKwp: a KEK is always an AES key');
    checkKwpBlob(k.blob, k.lengthBytes);
  }
  for (const k of t.keys) {
    const type = k.keyType ?? 'aes';
    checkKwpBlob(k.blob, k.lengthBytes, type);
    if (type !== 'aes' && !(isPrivateKeyType(type) ? t.privateUnwrappingKey : t.secretUnwrappingKey)) {
      throw new KeyhubError('INPUT_INVALID', `translateKwp: a ${type} key needs the store it is kept under`);
    }
  }
  if (t.macKey) {
    t.keks.forEach((k, i) => {
      if (!k.mac) throw macInvalid('kek', i);
    });
    t.keys.forEach((k, i) => {
      if (!k.mac) throw macInvalid('key', i);
    });
  }
  if (t.pairs.length % 2 !== 0) throw new KeyhubError('INPUT_INVALID', 'translateKwp: pairs must hold two indexes each');
  for (let i = 0; i < t.pairs.length; i += 2) {
    if (t.pairs[i] >= t.keks.length || t.pairs[i + 1] >= t.keys.length) {
      throw new KeyhubError('INPUT_INVALID', `translateKwp: pair ${i / 2} names a KEK or key that was not given`);
    }
  }
}
