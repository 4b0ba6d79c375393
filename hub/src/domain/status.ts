import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../context';

export interface StatusRow {
  key: string;
  version: number;
  kcv: string;
  listener: string;
  target: string;
  state: string;
  attempts: number;
  targetKcv: string | null;
  errorCode: string | null;
  updatedAt: string;
  confirmedAt: string | null;
}

/** Where every key version is: one row per key version x listener x target. */
@injectable()
export class KeyStatus {
  constructor(private readonly ctx: HubContext) {}

  async execute(keyName?: string): Promise<StatusRow[]> {
    if (keyName !== undefined) {
      const [k] = await this.ctx.ds.query('SELECT 1 FROM keys WHERE name = $1', [keyName]);
      if (!k) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${keyName}"`);
    }
    const rows: Array<Record<string, unknown>> = await this.ctx.ds.query(
      `SELECT k.name AS key, v.version, v.kcv, d.listener_id AS listener, d.target, d.state, d.attempts, d.target_kcv, d.error_code, d.updated_at, d.confirmed_at
         FROM keys k JOIN key_versions v ON v.key_id = k.id
         LEFT JOIN distributions d ON d.key_version_id = v.id
        WHERE ($1::text IS NULL OR k.name = $1)
        ORDER BY k.name, v.version, d.listener_id, d.target`,
      [keyName ?? null],
    );
    return rows.map((r) => ({
      key: r.key as string,
      version: Number(r.version),
      kcv: r.kcv as string,
      listener: (r.listener as string | null) ?? '-',
      target: (r.target as string | null) ?? '-',
      state: (r.state as string | null) ?? 'not distributed',
      attempts: Number(r.attempts ?? 0),
      targetKcv: (r.target_kcv as string | null) ?? null,
      errorCode: (r.error_code as string | null) ?? null,
      updatedAt: r.updated_at ? (r.updated_at as Date).toISOString() : '',
      confirmedAt: r.confirmed_at ? (r.confirmed_at as Date).toISOString() : null,
    }));
  }
}
