import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { KEY_ALGORITHMS, KEY_LENGTH_BYTES, KEY_USAGES, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { aesKcv, KeyhubError, mapConcurrent } from '@keyhub/shared';
import { appendAudit } from '../audit/audit-log';
import { HubContext } from '../context';
import { insertRows } from '../store/sql';

export interface CreateKeyInput {
  name: string;
  algorithm: string;
  usages?: string[];
  exportable?: boolean;
  actor: string;
}

export interface CreatedKey {
  id: string;
  name: string;
  algorithm: KeyAlgorithm;
  version: number;
  kcv: string;
}

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** Generates a key in the hub HSM and stores it only wrapped under the master key. */
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
    const specs = inputs.map((input) => validate(input));
    const names = new Set<string>();
    for (const s of specs) {
      if (names.has(s.input.name)) throw new KeyhubError('INPUT_INVALID', `key name "${s.input.name}" is given twice`);
      names.add(s.input.name);
    }
    const { keyring } = this.ctx;
    const hsm = keyring.hsm;
    const made = await mapConcurrent(specs, hsm.concurrency, async (spec) => {
      // Session object: extractable only so it can be wrapped under the master key,
      // CKA_SIGN only so the HSM can compute its CMAC KCV. It is destroyed right after.
      const handle = await hsm.generateAesKey(spec.length, { token: false, extractable: true, sign: true });
      try {
        return { spec, id: randomUUID(), versionId: randomUUID(), kcv: await aesKcv(hsm, handle), wrapped: await keyring.wrapUnderMaster(handle) };
      } finally {
        await hsm.destroy(handle);
      }
    });
    await this.ctx.ds.transaction(async (m) => {
      const taken: Array<{ name: string }> = await m.query('SELECT name FROM keys WHERE name = ANY($1) LIMIT 1', [[...names]]);
      if (taken.length) throw new KeyhubError('KEY_EXISTS', `key "${taken[0].name}" already exists`);
      await insertRows(m, 'keys', ['id', 'name', 'algorithm', 'usages', 'exportable', 'state', 'current_version', 'created_by'],
        made.map((k) => [k.id, k.spec.input.name, k.spec.algorithm, k.spec.usages, k.spec.exportable, 'active', 1, k.spec.input.actor]));
      await insertRows(m, 'key_versions', ['id', 'key_id', 'version', 'wrapped', 'length', 'kcv', 'state'],
        made.map((k) => [k.versionId, k.id, 1, k.wrapped, k.spec.length, k.kcv, 'active']));
      await appendAudit(m, made.map((k) => ({
        actor: k.spec.input.actor,
        action: 'key.created',
        subject: `key:${k.spec.input.name}`,
        details: { keyId: k.id, version: 1, algorithm: k.spec.algorithm, kcv: k.kcv, usages: k.spec.usages.join(','), exportable: k.spec.exportable },
      })));
    });
    return made.map((k) => ({ id: k.id, name: k.spec.input.name, algorithm: k.spec.algorithm, version: 1, kcv: k.kcv }));
  }
}

function validate(input: CreateKeyInput): { input: CreateKeyInput; algorithm: KeyAlgorithm; usages: KeyUsage[]; length: number; exportable: boolean } {
  if (!KEY_NAME.test(input.name)) throw new KeyhubError('INPUT_INVALID', 'key name must be 1-128 characters of A-Z a-z 0-9 . _ : / -');
  if (!(KEY_ALGORITHMS as readonly string[]).includes(input.algorithm)) {
    throw new KeyhubError('INPUT_INVALID', `algorithm must be one of ${KEY_ALGORITHMS.join(', ')}`);
  }
  const algorithm = input.algorithm as KeyAlgorithm;
  const usages = [...new Set(input.usages ?? ['encrypt', 'decrypt'])];
  const bad = usages.filter((u) => !(KEY_USAGES as readonly string[]).includes(u));
  if (bad.length || usages.length === 0) throw new KeyhubError('INPUT_INVALID', `usages must be among ${KEY_USAGES.join(', ')}`);
  return { input, algorithm, usages: usages as KeyUsage[], length: KEY_LENGTH_BYTES[algorithm], exportable: input.exportable ?? false };
}
