import type { WrappedKeyType } from '../hsm';

/** Messages between KwpTranslator and its worker thread (structured clone; byte arrays are transferred). */

export interface WorkerInit {
  module: string;
  slot: Uint8Array;
  kwpMechanism: number;
}

export interface WorkerFailure {
  /** The PKCS#11 function that failed. */
  fn: string;
  /** Set when a blob's MAC did not verify (nothing was unwrapped): which one. */
  macInvalid?: { side: 'kek' | 'key'; index: number };
  /** Its CK_RV, when it was a PKCS#11 error. */
  code?: number;
  message: string;
}

export type WorkerReady = { type: 'ready'; session: Uint8Array } | { type: 'ready'; error: WorkerFailure };

export interface WorkerBlob {
  blob: Uint8Array;
  /** Absent: AES. Other types are unwrapped under the secret or private key store. */
  keyType?: WrappedKeyType;
  mac?: { data: Uint8Array; tag: Uint8Array };
}

export interface TranslateRequest {
  type: 'translate';
  id: number;
  unwrappingKey: Uint8Array;
  kekUnwrappingKey: Uint8Array;
  secretUnwrappingKey?: Uint8Array;
  privateUnwrappingKey?: Uint8Array;
  macKey?: Uint8Array;
  keks: WorkerBlob[];
  keys: WorkerBlob[];
  pairs: Uint32Array;
}

export type TranslateReply =
  /** bytes: the blobs one after another; lengths: a Uint32Array's buffer, one length per blob. */
  { type: 'translated'; id: number; bytes: ArrayBuffer; lengths: ArrayBuffer } | { type: 'translated'; id: number; error: WorkerFailure };
