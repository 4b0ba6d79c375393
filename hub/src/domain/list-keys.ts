import { injectable } from 'tsyringe';
import { HubContext } from '../context';

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
  createdBy: string;
  createdAt: string;
}

@injectable()
export class ListKeys {
  constructor(private readonly ctx: HubContext) {}

  async execute(): Promise<KeyRow[]> {
    const rows: Array<Record<string, unknown>> = await this.ctx.ds.query(
      `SELECT k.id, k.name, k.algorithm, k.state, k.current_version, v.kcv, k.usages, k.exportable, k.created_by, k.created_at
         FROM keys k LEFT JOIN key_versions v ON v.key_id = k.id AND v.version = k.current_version
        ORDER BY k.name`,
    );
    return rows.map((r) => ({
      id: r.id as string,
      name: r.name as string,
      algorithm: r.algorithm as string,
      state: r.state as string,
      currentVersion: Number(r.current_version),
      kcv: (r.kcv as string | null) ?? null,
      usages: r.usages as string[],
      exportable: r.exportable as boolean,
      createdBy: r.created_by as string,
      createdAt: (r.created_at as Date).toISOString(),
    }));
  }
}
