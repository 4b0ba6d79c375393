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
  key: Pick<KeyEntity, 'id' | 'algorithm' | 'usages' | 'exportable' | 'sensitive'> & Partial<Pick<KeyEntity, 'targetKinds' | 'allowClearImport'>>;
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
  const targets = targetPolicyField(key);
  if (targets) fields.push('target_policy', targets);
  return encode(fields);
}

/**
 * The kinds of target a key may reach and whether it may be imported in
 * clear (issue 12), as the MAC binds them: only when they differ from the
 * default (`pkcs11` only, no clear import), so rows made before the policy
 * existed, and HSM-only keys, encode exactly as before. A row widened in the
 * database no longer matches its MAC; a narrowed one fails too (closed).
 */
export function targetPolicyField(key: { targetKinds?: string[]; allowClearImport?: boolean }): string | undefined {
  const kinds = [...new Set(key.targetKinds ?? ['pkcs11'])].sort().join(',');
  const clear = key.allowClearImport === true;
  if (kinds === 'pkcs11' && !clear) return undefined;
  return `kinds=${kinds};clear_import=${clear}`;
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

/**
 * A root KEK ceremony (issue 13): its listener, root KEK, scheme and the
 * nonce its parts are derived from, so a row moved to another site, or a
 * nonce from another ceremony, does not match.
 */
export function ceremonyMacData(c: { id: string; listenerId: string; kekId: string; kekVersion: number; scheme: string; parts: number; threshold: number; nonce: Buffer }): Buffer {
  return encode(['root_kek_ceremony', c.id, c.listenerId, c.kekId, String(c.kekVersion), c.scheme, String(c.parts), String(c.threshold), c.nonce]);
}

/** One part of a ceremony: to whom it is released, and its KCV. */
export function ceremonyPartMacData(p: { ceremonyId: string; part: number; custodianId: string; kcv: string }): Buffer {
  return encode(['root_kek_ceremony_part', p.ceremonyId, String(p.part), p.custodianId, p.kcv]);
}
