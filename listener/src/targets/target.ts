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
    /** A key pair's public key, DER SPKI in base64 (the blob holds the private key as PKCS#8). */
    publicKey?: string;
    /** A key pair's certificate chain from the hub, base64 DER, leaf first (protocol packages.ts); for keystore targets. */
    certificateChain?: string[];
    /** The kinds of target the key's policy allows (protocol packages.ts); absent: pkcs11 only. Keystore and cloud targets check it. */
    targetKinds?: readonly string[];
    /** The policy allows a cloud JWK import (the key in clear inside TLS). */
    allowClearImport?: boolean;
  };
  wrapped: { kekId: string; kekVersion: number; mechanism: 'AES-KWP'; blob: Buffer };
}

export interface ImportResult {
  outcome: 'imported' | 'already_present';
  /** KCV computed at the target. */
  kcv: string;
  /** A cloud target's ids and import state for the receipt (protocol receipts.ts). */
  cloud?: { keyId: string; versionId: string; importState: string; wrapping: string };
}

export interface KeyRef {
  keyId: string;
  version: number;
}

export interface InventoryItem extends KeyRef {
  label: string;
  algorithm: string;
  enabled: boolean;
  /** The KCV the target vouches for (a cloud: the one computed over the material it sent; a payment HSM: the one it computes); absent when it has none. */
  kcv?: string;
}

/** What a lifecycle command left at the target (protocol COMMAND_EFFECTS). */
export type LifecycleEffect = 'usages_off' | 'usages_restored' | 'protect_usages_off' | 'destroyed' | 'absent';

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
  /**
   * Imports this target takes at once, for itself, beyond the listener's
   * importConcurrency (import-slots.ts); set by targets that batch (a
   * keystore writes what is in flight in one rewrite). Absent: the target
   * shares importConcurrency with the others.
   */
  readonly importSlots?: number;
  import(request: ImportRequest): Promise<ImportResult>;
  disable(ref: KeyRef): Promise<boolean>;
  /** Removes every object of the version; false when there was none. */
  destroy(ref: KeyRef): Promise<boolean>;
  /*
   * Lifecycle commands (NIST SP 800-57 states, protocol/src/messages/key-commands.ts).
   * Each answers what the target now holds for the version; 'absent' when it
   * holds nothing of it. What each means for a kind of target is that
   * target's to define and document (pkcs11-target.ts for tokens).
   */
  /** Not usable for now; `resume` undoes it. */
  suspend(ref: KeyRef): Promise<LifecycleEffect>;
  /** The policy's usages (`usages`) back on. */
  resume(ref: KeyRef, usages: KeyUsage[]): Promise<LifecycleEffect>;
  /** No new protection (encrypt, sign, wrap, derive off); processing old data stays as `usages` allow. */
  deactivate(ref: KeyRef, usages: KeyUsage[]): Promise<LifecycleEffect>;
  /** Not usable at all, for good. */
  compromise(ref: KeyRef): Promise<LifecycleEffect>;
  inventory(): Promise<InventoryItem[]>;
  health(): Promise<TargetHealth>;
}
