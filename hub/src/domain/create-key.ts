import { randomUUID } from 'node:crypto';
import { injectable } from 'tsyringe';
import { KEY_ALGORITHMS, KEY_LENGTH_BYTES, KEY_USAGES, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { aesKcv, KeyhubError } from '@keyhub/shared';
import { appendAudit } from '../audit/audit-log';
import { HubContext } from '../context';
import { KeyEntity, KeyVersionEntity } from '../store/entities';

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
    if (!KEY_NAME.test(input.name)) throw new KeyhubError('INPUT_INVALID', 'key name must be 1-128 characters of A-Z a-z 0-9 . _ : / -');
    if (!(KEY_ALGORITHMS as readonly string[]).includes(input.algorithm)) {
      throw new KeyhubError('INPUT_INVALID', `algorithm must be one of ${KEY_ALGORITHMS.join(', ')}`);
    }
    const algorithm = input.algorithm as KeyAlgorithm;
    const usages = [...new Set(input.usages ?? ['encrypt', 'decrypt'])];
    const bad = usages.filter((u) => !(KEY_USAGES as readonly string[]).includes(u));
    if (bad.length || usages.length === 0) throw new KeyhubError('INPUT_INVALID', `usages must be among ${KEY_USAGES.join(', ')}`);

    const { keyring } = this.ctx;
    const length = KEY_LENGTH_BYTES[algorithm];
    // Session object: extractable only so it can be wrapped under the master key,
    // CKA_SIGN only so the HSM can compute its CMAC KCV. It is destroyed below.
    const handle = await keyring.hsm.generateAesKey(length, { token: false, extractable: true, sign: true });
    let kcv: string;
    let wrapped: Buffer;
    try {
      kcv = await aesKcv(keyring.hsm, handle);
      wrapped = await keyring.wrapUnderMaster(handle);
    } finally {
      await keyring.hsm.destroy(handle);
    }
    const id = randomUUID();
    await this.ctx.ds.transaction(async (m) => {
      if (await m.exists(KeyEntity, { where: { name: input.name } })) throw new KeyhubError('KEY_EXISTS', `key "${input.name}" already exists`);
      await m.insert(KeyEntity, {
        id,
        name: input.name,
        algorithm,
        usages: usages as KeyUsage[],
        exportable: input.exportable ?? false,
        state: 'active',
        currentVersion: 1,
        createdBy: input.actor,
      });
      await m.insert(KeyVersionEntity, { id: randomUUID(), keyId: id, version: 1, wrapped, length, kcv, state: 'active' });
      await appendAudit(m, [
        { actor: input.actor, action: 'key.created', subject: `key:${input.name}`, details: { keyId: id, version: 1, algorithm, kcv, usages: usages.join(','), exportable: input.exportable ?? false } },
      ]);
    });
    return { id, name: input.name, algorithm, version: 1, kcv };
  }
}
