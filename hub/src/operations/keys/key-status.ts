import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../../context';
import { keyNameExists, keyStatusRows } from '../../store/queries/keys';

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
  /** A cloud target's import (its key and version ids, import state, wrapping), from the receipt that confirmed it; null elsewhere. */
  cloud: CloudImport | null;
}

export interface CloudImport {
  keyId: string;
  versionId: string;
  importState: string;
  wrapping: string;
}

/** The stored `distributions.cloud` (jsonb), or null. */
export function cloudImport(v: unknown): CloudImport | null {
  if (!v || typeof v !== 'object') return null;
  const c = v as Record<string, unknown>;
  const s = (x: unknown): string => (typeof x === 'string' ? x : '');
  return { keyId: s(c.keyId), versionId: s(c.versionId), importState: s(c.importState), wrapping: s(c.wrapping) };
}

/**
 * Where every key version is: one row per key version x listener x target.
 * Rule: a distribution counts as done only in state confirmed (the target
 * reproduced the KCV); a version never distributed is shown as such.
 */
@injectable()
export class KeyStatus {
  constructor(private readonly ctx: HubContext) {}

  async execute(keyName?: string): Promise<StatusRow[]> {
    if (keyName !== undefined) {
      if (!(await keyNameExists(this.ctx.ds, keyName))) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${keyName}"`);
    }
    const rows = await keyStatusRows(this.ctx.ds, keyName ?? null);
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
      cloud: cloudImport(r.cloud),
    }));
  }
}
