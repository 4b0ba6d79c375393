import type { KeyAlgorithm, KeyUsage } from '@keyhub/protocol';

/** What the inbox hands a target: the key's identity and policy, and the key still wrapped. */
export interface ImportRequest {
  key: {
    id: string;
    name: string;
    version: number;
    algorithm: KeyAlgorithm;
    length: number;
    usages: KeyUsage[];
    exportable: boolean;
    /** KCV the target must reproduce. */
    kcv: string;
  };
  wrapped: { kekId: string; kekVersion: number; mechanism: 'AES-KWP'; blob: Buffer };
}

export interface ImportResult {
  outcome: 'imported' | 'already_present';
  /** KCV computed at the target. */
  kcv: string;
}

export interface KeyRef {
  keyId: string;
  version: number;
}

export interface InventoryItem extends KeyRef {
  label: string;
  algorithm: string;
  enabled: boolean;
}

export interface TargetHealth {
  healthy: boolean;
  detail?: string;
}

/**
 * A place keys end up: an HSM token, a Java keystore, a cloud KMS. Import is
 * idempotent (the same key id and version a second time is already_present)
 * and fails with KeyhubError codes (UNWRAP_FAILED, KCV_MISMATCH,
 * KEY_LENGTH_INVALID, TARGET_IMPORT_FAILED, KEK_UNKNOWN), so the inbox and
 * receipts never need to know what kind of target they talk to.
 */
export interface Target {
  readonly name: string;
  readonly kind: string;
  import(request: ImportRequest): Promise<ImportResult>;
  disable(ref: KeyRef): Promise<boolean>;
  destroy(ref: KeyRef): Promise<boolean>;
  inventory(): Promise<InventoryItem[]>;
  health(): Promise<TargetHealth>;
}
