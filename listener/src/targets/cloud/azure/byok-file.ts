/**
 * The `.byok` transfer blob of Azure's BYOK specification: the
 * CKM_RSA_AES_KEY_WRAP ciphertext for the vault's KEK, named by its full key
 * id (with version). Sent as the base64url `key_hsm` of an import.
 */
export interface ByokFile {
  schema_version: '1.0.0';
  header: { kid: string; alg: 'dir'; enc: 'CKM_RSA_AES_KEY_WRAP' };
  ciphertext: string;
  generator: string;
}

export const BYOK_GENERATOR = 'Keyhub listener; BYOK spec 1.0';

export function byokFile(kekId: string, blob: Buffer): Buffer {
  const file: ByokFile = { schema_version: '1.0.0', header: { kid: kekId, alg: 'dir', enc: 'CKM_RSA_AES_KEY_WRAP' }, ciphertext: blob.toString('base64url'), generator: BYOK_GENERATOR };
  return Buffer.from(JSON.stringify(file), 'utf8');
}
