import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../../context';
import { auditEventBySeq, auditEventsBefore, keyNamePage, matrixCells, siteHealthPage, siteIdPage, versionPage, type SiteHealthRow, type VersionRow } from '../../store/queries/dashboard';
import { verifyAuditForDashboard } from './audit-verdict';
import { summarizeCell, type MatrixCell } from './matrix-cell';

/** Page sizes are bounded here whatever a query string asks for: no page renders an unbounded set. */
export const PAGE_LIMITS = { versions: 100, matrixKeys: 50, matrixSites: 25, sites: 100, audit: 100 } as const;
const clamp = (n: number | undefined, max: number): number => Math.max(1, Math.min(max, Math.floor(n ?? max)));

export interface Matrix {
  keys: Array<{ id: string; name: string; currentVersion: number; cells: Array<MatrixCell | null> }>;
  sites: Array<{ id: string; state: string }>;
  nextKey: string | null;
  nextSite: string | null;
}

export interface AuditStatus {
  ok: boolean;
  events: number;
  checkpoints: number;
  headSeq: number | null;
  firstBad: { seq: number; reason: string } | null;
  checkedAt: string;
}

/**
 * The dashboard's read model: one bounded page per call, read-only. Rule:
 * keyset paging with a hard page limit, and the audit verdict comes from
 * a verification of the stored chain against the hub signing key held in
 * the HSM (the keyring), never against a key found in the data it verifies.
 */
@injectable()
export class DashboardReads {
  constructor(private readonly ctx: HubContext) {}

  async versions(q: { prefix?: string; after?: string; limit?: number }): Promise<{ rows: VersionRow[]; next: string | null }> {
    const limit = clamp(q.limit, PAGE_LIMITS.versions);
    const cursor = parseVersionCursor(q.after);
    const rows = await versionPage(this.ctx.ds, { prefix: q.prefix || null, afterName: cursor?.name ?? null, afterVersion: cursor?.version ?? 0, limit });
    const last = rows[rows.length - 1];
    return { rows, next: rows.length === limit && last ? `${last.version}:${last.key_name}` : null };
  }

  async matrix(q: { keyPrefix?: string; sitePrefix?: string; afterKey?: string; afterSite?: string; keys?: number; sites?: number }): Promise<Matrix> {
    const keyLimit = clamp(q.keys, PAGE_LIMITS.matrixKeys);
    const siteLimit = clamp(q.sites, PAGE_LIMITS.matrixSites);
    const [keys, sites] = await Promise.all([
      keyNamePage(this.ctx.ds, q.keyPrefix || null, q.afterKey || null, keyLimit),
      siteIdPage(this.ctx.ds, q.sitePrefix || null, q.afterSite || null, siteLimit),
    ]);
    const rows = await matrixCells(
      this.ctx.ds,
      keys.map((k) => k.id),
      sites.map((s) => s.id),
    );
    const byCell = new Map<string, { version: number; counts: Record<string, number> }>();
    for (const r of rows) {
      const id = `${r.key_id}\u0000${r.listener_id}`;
      const cell = byCell.get(id) ?? { version: Number(r.version), counts: {} };
      cell.counts[r.state] = (cell.counts[r.state] ?? 0) + Number(r.n);
      byCell.set(id, cell);
    }
    return {
      keys: keys.map((k) => ({
        id: k.id,
        name: k.name,
        currentVersion: Number(k.current_version),
        cells: sites.map((s) => {
          const c = byCell.get(`${k.id}\u0000${s.id}`);
          return c ? summarizeCell(c.version, c.counts) : null;
        }),
      })),
      sites,
      nextKey: keys.length === keyLimit ? keys[keys.length - 1].name : null,
      nextSite: sites.length === siteLimit ? sites[sites.length - 1].id : null,
    };
  }

  async siteHealth(q: { prefix?: string; after?: string; limit?: number }): Promise<{ rows: SiteHealthRow[]; next: string | null }> {
    const limit = clamp(q.limit, PAGE_LIMITS.sites);
    const rows = await siteHealthPage(this.ctx.ds, q.prefix || null, q.after || null, limit);
    return { rows, next: rows.length === limit ? rows[rows.length - 1].id : null };
  }

  async auditPage(before?: number): Promise<{ rows: Array<Record<string, unknown>>; next: number | null }> {
    const rows = await auditEventsBefore(this.ctx.ds, before ?? null, PAGE_LIMITS.audit);
    return { rows, next: rows.length === PAGE_LIMITS.audit ? Number(rows[rows.length - 1].seq) : null };
  }

  async auditEvent(seq: number): Promise<Record<string, unknown>> {
    const row = await auditEventBySeq(this.ctx.ds, seq);
    if (!row) throw new KeyhubError('AUDIT_RANGE_EMPTY', `no audit event ${seq}`);
    return row;
  }

  /** Verifies the stored chain now: every row is read; only events not verified before by this process are hashed again (audit-verdict.ts). */
  async auditStatus(): Promise<AuditStatus> {
    const v = await verifyAuditForDashboard(this.ctx.ds, this.ctx.keyring.signingSpki);
    return {
      ok: v.ok,
      events: v.events,
      checkpoints: v.checkpoints,
      headSeq: v.head?.seq ?? null,
      firstBad: v.firstBad ?? null,
      checkedAt: new Date().toISOString(),
    };
  }
}

/** Version-page cursor: `<version>:<key name>` (the version first, since key names may hold colons). */
function parseVersionCursor(after: string | undefined): { name: string; version: number } | undefined {
  if (!after) return undefined;
  const m = /^(\d{1,9}):(.+)$/.exec(after);
  return m ? { version: Number(m[1]), name: m[2] } : undefined;
}
