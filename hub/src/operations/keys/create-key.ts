import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { DEFAULT_TARGET_KINDS, type KeyAlgorithm } from '@keyhub/protocol';
import { KeyhubError, mapConcurrent } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import type { HubKeyring } from '../../crypto/hub-keyring';
import { generateKeyVersion } from '../../crypto/key-material';
import { keyVersionMacData } from '../../crypto/row-mac';
import { assertDistinctNames, keySpec, type KeySpec } from '../../domain/key-spec';
import { findTakenKeyName, insertKeys, insertKeyVersions } from '../../store/queries/keys';
import { setInitialLifecycle } from '../../store/queries/key-lifecycle';
import { initialSchedule } from '../../domain/key-lifecycle';

export interface CreateKeyInput {
  name: string;
  algorithm: string;
  usages?: string[];
  exportable?: boolean;
  sensitive?: boolean;
  /** Kinds of target the key may reach (issue 12); default `pkcs11` only. */
  targetKinds?: string[];
  /** A cloud JWK import (the key in clear inside TLS) is allowed; default false. */
  allowClearImport?: boolean;
  /** Lifecycle (domain/key-lifecycle.ts): a future activation date starts version 1 in pre-activation. */
  activateAt?: Date;
  cryptoperiodSeconds?: number;
  rotateEverySeconds?: number;
  graceSeconds?: number;
  actor: string;
}

export interface CreatedKey {
  id: string;
  name: string;
  algorithm: KeyAlgorithm;
  version: number;
  kcv: string;
}

/** A key made in the HSM, before it is stored: its ids, KCV and blob under the master key. */
interface MadeKey {
  spec: KeySpec<CreateKeyInput>;
  id: string;
  versionId: string;
  kcv: string;
  wrapped: Buffer;
  /** A key pair's public key (DER SPKI); null for a secret key. */
  publicKey: Buffer | null;
  /** Row MAC over the version and its key's policy (crypto/row-mac.ts). */
  mac: Buffer;
}

/**
 * Generates a key of any type in the hub HSM (a key pair: the private key is
 * stored, its public key beside it) and stores it only wrapped under the
 * master key of its class, bound to its row by an HSM MAC. Rule: a key name is
 * unique; usages that enable wrap/decrypt attacks are refused
 * (KEY_USAGE_CONFLICT, domain/key-spec.ts); the key leaves the HSM only
 * wrapped, and its KCV and row MAC are computed by the HSM.
 */
@injectable()
export class CreateKey {
  constructor(private readonly ctx: HubContext) {}

  async execute(input: CreateKeyInput): Promise<CreatedKey> {
    return (await this.executeMany([input]))[0];
  }

  /**
   * Creates many keys in one transaction (bulk provisioning, e.g. one key per
   * terminal): the HSM work runs on every pooled session, the rows and their
   * audit events are written in batches. All or nothing.
   */
  async executeMany(inputs: CreateKeyInput[]): Promise<CreatedKey[]> {
    if (inputs.length === 0) return [];
    const specs = inputs.map((input) => keySpec(input));
    const names = assertDistinctNames(specs.map((s) => s.input.name));
    const made = await this.generate(specs);
    await this.ctx.ds.transaction(async (m) => {
      const taken = await findTakenKeyName(m, [...names]);
      if (taken !== undefined) throw new KeyhubError('KEY_EXISTS', `key "${taken}" already exists`);
      await insertKeys(
        m,
        made.map((k) => [
          k.id,
          k.spec.input.name,
          k.spec.algorithm,
          k.spec.usages,
          k.spec.exportable,
          k.spec.sensitive,
          'active',
          1,
          k.spec.input.actor,
          targetKindsOf(k.spec.input),
          k.spec.input.allowClearImport === true,
        ]),
      );
      await insertKeyVersions(
        m,
        made.map((k) => [k.versionId, k.id, 1, k.wrapped, k.spec.length, k.kcv, 'active', k.mac, k.publicKey]),
      );
      // Only keys with lifecycle settings: the others keep the column defaults (active from now, no end), and bulk creation no second write.
      const now = new Date();
      await setInitialLifecycle(
        m,
        made.filter((k) => hasLifecycle(k.spec.input)).map((k) => ({ keyId: k.id, ...lifecycleOf(k.spec.input), ...initialSchedule(now, k.spec.input.activateAt, k.spec.input.cryptoperiodSeconds) })),
      );
      await appendAudit(
        m,
        made.map((k) => ({
          actor: k.spec.input.actor,
          action: 'key.created',
          subject: `key:${k.spec.input.name}`,
          details: {
            keyId: k.id,
            version: 1,
            algorithm: k.spec.algorithm,
            kcv: k.kcv,
            usages: k.spec.usages.join(','),
            exportable: k.spec.exportable,
            sensitive: k.spec.sensitive,
            targetKinds: targetKindsOf(k.spec.input).join(','),
            allowClearImport: k.spec.input.allowClearImport === true,
            ...(hasLifecycle(k.spec.input) ? lifecycleAudit(k.spec.input, now) : {}),
          },
        })),
      );
    });
    return made.map((k) => ({ id: k.id, name: k.spec.input.name, algorithm: k.spec.algorithm, version: 1, kcv: k.kcv }));
  }

  private async generate(specs: Array<KeySpec<CreateKeyInput>>): Promise<MadeKey[]> {
    const items = specs.map((spec) => ({
      key: {
        id: randomUUID(),
        algorithm: spec.algorithm,
        usages: spec.usages,
        exportable: spec.exportable,
        sensitive: spec.sensitive,
        targetKinds: targetKindsOf(spec.input),
        allowClearImport: spec.input.allowClearImport === true,
      },
      versionId: randomUUID(),
      version: 1,
      length: spec.length,
    }));
    const made = await makeKeyVersions(this.ctx.keyring, items);
    return made.map((v, i) => ({ spec: specs[i], id: items[i].key.id, versionId: items[i].versionId, kcv: v.kcv, wrapped: v.wrapped, publicKey: v.publicKey, mac: v.mac }));
  }
}

/** The policy's kinds as stored and MAC-bound: distinct, sorted, `pkcs11` only when none are given. */
export function targetKindsOf(input: { targetKinds?: string[] }): string[] {
  return [...new Set(input.targetKinds?.length ? input.targetKinds : DEFAULT_TARGET_KINDS)].sort();
}

function hasLifecycle(i: CreateKeyInput): boolean {
  return i.activateAt !== undefined || i.cryptoperiodSeconds !== undefined || i.rotateEverySeconds !== undefined || i.graceSeconds !== undefined;
}

/** What the creation event records of a key's lifecycle: the auditor sees the schedule it was given. */
function lifecycleAudit(input: CreateKeyInput, now: Date): Record<string, string | number | null> {
  const schedule = initialSchedule(now, input.activateAt, input.cryptoperiodSeconds);
  return {
    state: schedule.state,
    activateAt: schedule.activateAt.toISOString(),
    deactivateAt: schedule.deactivateAt?.toISOString() ?? null,
    ...lifecycleOf(input),
  };
}

function lifecycleOf(input: CreateKeyInput): { cryptoperiodSeconds: number | null; rotateEverySeconds: number | null; graceSeconds: number | null } {
  return { cryptoperiodSeconds: input.cryptoperiodSeconds ?? null, rotateEverySeconds: input.rotateEverySeconds ?? null, graceSeconds: input.graceSeconds ?? null };
}

/** A key version to generate: its key's policy and the version's id and number, which the row MAC binds. */
export interface VersionToMake {
  key: { id: string; algorithm: KeyAlgorithm; usages: string[]; exportable: boolean; sensitive: boolean; targetKinds: string[]; allowClearImport: boolean };
  versionId: string;
  version: number;
  length: number;
}

/** A generated key version as stored: KCV, blob under the master key, a key pair's public key (DER SPKI, else null), row MAC. */
export interface MadeVersion {
  kcv: string;
  wrapped: Buffer;
  publicKey: Buffer | null;
  mac: Buffer;
}

/**
 * Generates key versions in the hub HSM on every pooled session; each leaves
 * the HSM only wrapped under the master key, with its KCV and row MAC
 * computed by the HSM. Shared by CreateKey (version 1) and RotateKey
 * (version N+1).
 */
export async function makeKeyVersions(keyring: HubKeyring, items: VersionToMake[]): Promise<MadeVersion[]> {
  return mapConcurrent(items, keyring.hsm.concurrency, async (item) => {
    // Every type, its KCV method and its master key: crypto/key-material.ts.
    const { kcv, wrapped, publicKey } = await generateKeyVersion(keyring, item.key.algorithm);
    const data = keyVersionMacData({ key: item.key, version: { id: item.versionId, version: item.version, length: item.length, kcv, wrapped, publicKey } });
    return { kcv, wrapped, publicKey, mac: await keyring.macRow(data) };
  });
}
