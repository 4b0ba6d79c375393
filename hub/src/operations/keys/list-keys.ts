import { injectable } from 'tsyringe';
import { HubContext } from '../../context';
import { keyPage, listKeysWithCurrentKcv } from '../../store/queries/keys';

export interface KeyRow {
  id: string;
  name: string;
  algorithm: string;
  state: string;
  currentVersion: number;
  /** KCV of the current version: what operators compare at the targets. */
  kcv: string | null;
  usages: string[];
  exportable: boolean;
  sensitive: boolean;
  /** Kinds of target the key may reach (issue 12). */
  targetKinds: string[];
  allowClearImport: boolean;
  createdBy: string;
  createdAt: string;
}

/** Lists every key with its current version's KCV. Rule: key material never leaves in a listing, only KCVs. */
@injectable()
export class ListKeys {
  constructor(private readonly ctx: HubContext) {}

  async execute(): Promise<KeyRow[]> {
    return (await listKeysWithCurrentKcv(this.ctx.ds)).map(toKeyRow);
  }

  /** One page by name; `next` names the last key when more may follow. */
  async page(q: { prefix?: string; after?: string; limit: number }): Promise<{ keys: KeyRow[]; next: string | null }> {
    const keys = (await keyPage(this.ctx.ds, q.prefix ?? null, q.after ?? null, q.limit)).map(toKeyRow);
    return { keys, next: keys.length === q.limit ? keys[keys.length - 1].name : null };
  }
}

function toKeyRow(r: Record<string, unknown>): KeyRow {
  {
    return {
      id: r.id as string,
      name: r.name as string,
      algorithm: r.algorithm as string,
      state: r.state as string,
      currentVersion: Number(r.current_version),
      kcv: (r.kcv as string | null) ?? null,
      usages: r.usages as string[],
      exportable: r.exportable as boolean,
      sensitive: r.sensitive as boolean,
      targetKinds: (r.target_kinds as string[] | undefined) ?? ['pkcs11'],
      allowClearImport: r.allow_clear_import === true,
      createdBy: r.created_by as string,
      createdAt: (r.created_at as Date).toISOString(),
    };
  }
}
