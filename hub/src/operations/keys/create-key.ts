import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import type { KeyAlgorithm } from '@keyhub/protocol';
import { aesKcv, KeyhubError, mapConcurrent } from '@keyhub/shared';
import { appendAudit } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { keyVersionMacData } from '../../crypto/row-mac';
import { assertDistinctNames, keySpec, type KeySpec } from '../../domain/key-spec';
import { findTakenKeyName, insertKeys, insertKeyVersions } from '../../store/queries/keys';

export interface CreateKeyInput {
  name: string;
  algorithm: string;
  usages?: string[];
  exportable?: boolean;
  sensitive?: boolean;
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
  /** Row MAC over the version and its key's policy (crypto/row-mac.ts). */
  mac: Buffer;
}

/**
 * Generates a key in the hub HSM and stores it only wrapped under the key
 * store master key, bound to its row by an HSM MAC. Rule: a key name is
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
        made.map((k) => [k.id, k.spec.input.name, k.spec.algorithm, k.spec.usages, k.spec.exportable, k.spec.sensitive, 'active', 1, k.spec.input.actor]),
      );
      await insertKeyVersions(
        m,
        made.map((k) => [k.versionId, k.id, 1, k.wrapped, k.spec.length, k.kcv, 'active', k.mac]),
      );
      await appendAudit(
        m,
        made.map((k) => ({
          actor: k.spec.input.actor,
          action: 'key.created',
          subject: `key:${k.spec.input.name}`,
          details: { keyId: k.id, version: 1, algorithm: k.spec.algorithm, kcv: k.kcv, usages: k.spec.usages.join(','), exportable: k.spec.exportable, sensitive: k.spec.sensitive },
        })),
      );
    });
    return made.map((k) => ({ id: k.id, name: k.spec.input.name, algorithm: k.spec.algorithm, version: 1, kcv: k.kcv }));
  }

  private async generate(specs: Array<KeySpec<CreateKeyInput>>): Promise<MadeKey[]> {
    const { keyring } = this.ctx;
    const hsm = keyring.hsm;
    return mapConcurrent(specs, hsm.concurrency, async (spec) => {
      // Session object: extractable only so it can be wrapped under the master key,
      // CKA_SIGN only so the HSM can compute its CMAC KCV. It is destroyed right after.
      const handle = await hsm.generateAesKey(spec.length, { token: false, extractable: true, sign: true });
      try {
        const id = randomUUID();
        const versionId = randomUUID();
        const kcv = await aesKcv(hsm, handle);
        const wrapped = await keyring.wrapKeyVersion(handle);
        const data = keyVersionMacData({
          key: { id, algorithm: spec.algorithm, usages: spec.usages, exportable: spec.exportable, sensitive: spec.sensitive },
          version: { id: versionId, version: 1, length: spec.length, kcv, wrapped },
        });
        return { spec, id, versionId, kcv, wrapped, mac: await keyring.macRow(data) };
      } finally {
        await hsm.destroy(handle);
      }
    });
  }
}
