/** Messages between KwpTranslator and its worker thread (structured clone; byte arrays are transferred). */

export interface WorkerInit {
  module: string;
  slot: Uint8Array;
  kwpMechanism: number;
}

export interface WorkerFailure {
  /** The PKCS#11 function that failed. */
  fn: string;
  /** Its CK_RV, when it was a PKCS#11 error. */
  code?: number;
  message: string;
}

export type WorkerReady = { type: 'ready'; session: Uint8Array } | { type: 'ready'; error: WorkerFailure };

export interface TranslateRequest {
  type: 'translate';
  id: number;
  unwrappingKey: Uint8Array;
  keks: Array<{ blob: Uint8Array }>;
  keys: Array<{ blob: Uint8Array }>;
  pairs: Uint32Array;
}

export type TranslateReply =
  /** bytes: the blobs one after another; lengths: a Uint32Array's buffer, one length per blob. */
  | { type: 'translated'; id: number; bytes: ArrayBuffer; lengths: ArrayBuffer }
  | { type: 'translated'; id: number; error: WorkerFailure };
