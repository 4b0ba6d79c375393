/**
 * What a row MAC covers. Every blob the hub stores under a master key sits
 * in a row that says what it is: whose it is, which version, its usages and
 * policy, its KCV. The database is not trusted, so a blob could be moved to
 * another row (site A's root KEK into a key version's row, one key's version
 * into another key) or a row's policy altered. Each row therefore carries an
 * HMAC-SHA256, computed in the hub HSM with `keyhub-row-mac` (a key that
 * never leaves it), over these fields; it is checked in the HSM before the
 * blob is ever unwrapped (HubKeyring.translate).
 *
 * Encoding: a version tag, then each field as a 4-byte big-endian length and
 * its bytes, so no two different rows encode alike. Lifecycle state is left
 * out (it changes without the HSM); what the key is and may do is in.
 */
import type { KeyEntity, KeyVersionEntity } from '../store/entities';

const TAG = 'keyhub.row-mac.v1';

function encode(fields: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const f of [TAG, ...fields]) {
    const bytes = typeof f === 'string' ? Buffer.from(f, 'utf8') : f;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

/** The fields of a key version row and its key that the MAC binds. */
export interface KeyVersionFacts {
  key: Pick<KeyEntity, 'id' | 'algorithm' | 'usages' | 'exportable' | 'sensitive'>;
  version: Pick<KeyVersionEntity, 'id' | 'version' | 'length' | 'kcv' | 'wrapped'> & { publicKey?: Buffer | null };
}

/**
 * A key pair's public key (DER SPKI) is bound too, as a last field present
 * only for key pairs: a swapped public key would make the package's KCV and
 * the target's signature check point at another key. Secret key rows encode
 * exactly as before it existed, so their stored MACs stay valid. Which
 * master key holds the blob follows from the algorithm, which is bound.
 */
export function keyVersionMacData({ key, version }: KeyVersionFacts): Buffer {
  const usages = [...key.usages].sort().join(',');
  const policy = `algorithm=${key.algorithm};length=${version.length};exportable=${key.exportable};sensitive=${key.sensitive}`;
  const fields: Array<string | Buffer> = ['key_version', version.id, String(version.version), key.id, usages, policy, version.kcv, version.wrapped];
  if (version.publicKey) fields.push('public_key', version.publicKey);
  return encode(fields);
}

/** The fields of a root KEK row that the MAC binds. */
export interface KekFacts {
  id: string;
  listenerId: string;
  version: number;
  kcv: string;
  wrapped: Buffer;
}

/** A root KEK is of the HSM-import class and stored under the KEK store; both are part of what it is. */
export function kekMacData(k: KekFacts): Buffer {
  return encode(['kek', k.id, String(k.version), k.listenerId, 'unwrap', 'class=site-import;store=keyhub-hmk-kek', k.kcv, k.wrapped]);
}

/**
 * A target KEK (issue 12): the same class and store as a root KEK, bound to
 * its target too, so a target KEK row cannot pass for a root KEK, nor for
 * another target's KEK.
 */
export function targetKekMacData(k: KekFacts & { target: string }): Buffer {
  return encode(['target_kek', k.id, String(k.version), k.listenerId, k.target, 'unwrap', 'class=site-import;store=keyhub-hmk-kek', k.kcv, k.wrapped]);
}
