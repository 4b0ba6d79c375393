import type { Hsm, KeyHandle } from '@keyhub/shared';
import type { KeyAlgorithm } from '@keyhub/protocol';

/**
 * The key material a cloud import carries. Either an object in the
 * listener's HSM (unwrapped there under a transit KEK; the re-wrap for the
 * cloud happens in the token where the token can do it), or clear bytes in
 * memory. Bytes are consumed: the importer wipes them once wrapped.
 * Material is raw bytes for AES/HMAC/generic keys and unencrypted PKCS#8
 * DER for RSA and EC private keys.
 */
export type ByokMaterial = { source: 'bytes'; bytes: Buffer } | { source: 'hsm'; hsm: Hsm; handle: KeyHandle; lengthBytes: number; kcv: string };

export interface CloudImportRequest {
  material: ByokMaterial;
  algorithm: KeyAlgorithm;
  /** Keyhub's key name; each cloud maps it to its own naming (alias, key name, crypto key id). */
  keyName: string;
  version: number;
  /**
   * The key's policy allows sending it in clear inside TLS (Azure JWK import
   * into a vault that is not HSM-backed). Absent: never.
   */
  allowClearImport?: boolean;
}

/** What a cloud receipt carries: the cloud's ids, its import state, and the KCV the listener computed over exactly the material it wrapped. */
export interface CloudImportResult {
  cloudKeyId: string;
  cloudVersionId: string;
  /** The cloud's own word for the state after the import (AWS KeyState, Azure enabled/disabled, GCP version state). */
  importState: string;
  kcv: string;
  /** The wrapping construction used, e.g. RSA_AES_KEY_WRAP_SHA_256, or JWK for a clear import. */
  wrapping: string;
  /** True when the key travelled in clear inside TLS (JWK import): the adapter audits it as such. */
  clearImport?: boolean;
}

export interface CloudKeyRef {
  keyName: string;
  version: number;
}

/**
 * One per cloud (AWS KMS, Azure Key Vault / Managed HSM, Google Cloud KMS).
 * The listener's cloud target adapter maps package, deactivate and destroy
 * commands onto these calls; errors are KeyhubErrors with CLOUD_* codes.
 */
export interface CloudImporter {
  readonly cloud: 'aws' | 'azure' | 'gcp';
  importKey(req: CloudImportRequest): Promise<CloudImportResult>;
  /** Stops the cloud from using the key version (deactivate / suspend). */
  disable(ref: CloudKeyRef): Promise<void>;
  /** Removes the imported material (or schedules its destruction where the cloud only offers that). */
  destroy(ref: CloudKeyRef): Promise<void>;
}
