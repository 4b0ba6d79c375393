import { injectable } from 'tsyringe';
import { z } from 'zod';
import { KeyhubError } from '@keyhub/shared';
import { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { isoCell, textCell, type ReportColumn, type ReportDocument } from '../../reports/report-document';
import { reportSite, siteReportCount, siteReportPage, type ReportSiteDbRow, type SiteReportDbRow, type SiteRowPosition } from '../../store/queries/reports';
import { DriftReport } from '../inventory/drift-report';
import { allPages, checkRowLimit, decodeCursor, encodeCursor } from './report-cursor';

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);
const position = z.tuple([z.string().max(300), z.number().int().min(0), z.string().max(300)]);
const positionOf = (r: SiteReportDbRow): SiteRowPosition => ({ key: r.key_name, version: r.version, target: r.target });

function toRow(r: SiteReportDbRow): api.SiteReportRow {
  return {
    key: r.key_name,
    version: r.version,
    versionState: r.version_state,
    target: r.target,
    hubKcv: r.hub_kcv,
    targetKcv: r.target_kcv,
    kcvConfirmed: r.target_kcv === r.hub_kcv,
    pushedAt: iso(r.pushed_at),
    confirmedAt: iso(r.confirmed_at),
    requestedBy: r.created_by,
  };
}

export const SITE_REPORT_COLUMNS: ReportColumn[] = [
  { header: 'key', width: 16 },
  { header: 'version', label: 'ver', width: 3 },
  { header: 'version_state', label: 'version state', width: 7 },
  { header: 'target', width: 8 },
  { header: 'hub_kcv', label: 'hub KCV', width: 5 },
  { header: 'target_kcv', label: 'target KCV', width: 5 },
  { header: 'kcv_confirmed', label: 'KCV ok', width: 4 },
  { header: 'pushed_at', label: 'pushed', width: 12 },
  { header: 'confirmed_at', label: 'confirmed', width: 12 },
  { header: 'requested_by', label: 'requested by', width: 10 },
];

const DRIFT_COLUMNS: ReportColumn[] = [
  { header: 'target', width: 8 },
  { header: 'kind', width: 8 },
  { header: 'key', width: 14 },
  { header: 'version', label: 'ver', width: 3 },
  { header: 'label', width: 14 },
  { header: 'expected_kcv', label: 'expected KCV', width: 6 },
  { header: 'reported_kcv', label: 'reported KCV', width: 6 },
  { header: 'first_seen_at', label: 'first seen', width: 12 },
  { header: 'last_seen_at', label: 'last seen', width: 12 },
];

const cellsOf = (r: api.SiteReportRow): string[] => [
  r.key,
  textCell(r.version),
  r.versionState,
  r.target,
  r.hubKcv,
  textCell(r.targetKcv),
  textCell(r.kcvConfirmed),
  isoCell(r.pushedAt),
  isoCell(r.confirmedAt),
  r.requestedBy,
];

function siteView(l: ReportSiteDbRow): api.SiteReport['site'] {
  return {
    id: l.id,
    state: l.state,
    hostname: l.hostname,
    approvedAt: iso(l.approved_at),
    approvedBy: l.approved_by,
    lastSeenAt: iso(l.last_seen_at),
    lastInventoryAt: iso(l.inventory_completed_at),
    inventoryTakenAt: iso(l.inventory_taken_at),
    inventoryItems: l.inventory_items,
  };
}

/**
 * Per site, for compliance: what it holds (key versions confirmed there by
 * a matching target KCV and not destroyed), when it last reported (heartbeat,
 * inventory), and its open drift findings (operations/inventory: the last
 * scan of its inventory against what the hub expects). Rule: metadata only;
 * read-only; keyset-paged.
 */
@injectable()
export class SiteReport {
  constructor(
    private readonly ctx: HubContext,
    private readonly drift: DriftReport,
  ) {}

  private async site(id: string): Promise<ReportSiteDbRow> {
    const l = await reportSite(this.ctx.ds, id);
    if (!l) throw new KeyhubError('LISTENER_NOT_FOUND', `no listener ${id}`);
    return l;
  }

  private async driftOf(id: string): Promise<api.SiteReport['drift']> {
    const d = await this.drift.execute({ listener: id, limit: api.REPORT_LIMITS.maxDriftFindings });
    return { counts: d.counts, findings: d.findings };
  }

  async page(id: string, q: { after?: string; limit: number }): Promise<api.SiteReport> {
    const l = await this.site(id);
    const after = decodeCursor(q.after, position);
    const [rows, drift] = await Promise.all([siteReportPage(this.ctx.ds, id, after && { key: after[0], version: after[1], target: after[2] }, q.limit), this.driftOf(id)]);
    const last = rows.length === q.limit ? positionOf(rows[rows.length - 1]) : undefined;
    return {
      report: 'site',
      generatedAt: new Date().toISOString(),
      hubFingerprint: this.ctx.keyring.fingerprint,
      next: last ? encodeCursor([last.key, last.version, last.target]) : null,
      site: siteView(l),
      drift,
      rows: rows.map(toRow),
    };
  }

  /** The whole report for CSV (the holdings) or PDF (site facts, holdings, drift), refused up front past the format's row limit. */
  async document(id: string, format: 'csv' | 'pdf'): Promise<ReportDocument> {
    const site = siteView(await this.site(id));
    checkRowLimit(format, await siteReportCount(this.ctx.ds, id), api.REPORT_LIMITS);
    const drift = await this.driftOf(id);
    const pageSize = api.REPORT_LIMITS.defaultPageRows;
    const ds = this.ctx.ds;
    const rows = (async function* () {
      for await (const r of allPages((after) => siteReportPage(ds, id, after, pageSize), positionOf, pageSize)) yield cellsOf(toRow(r));
    })();
    const counts = Object.entries(drift.counts)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(', ');
    return {
      name: `site-${site.id}`,
      title: `Site report: ${site.id}`,
      facts: [
        ['Site', `${site.id} (${site.state}${site.hostname ? `, ${site.hostname}` : ''})`],
        ['Approved', site.approvedAt ? `${site.approvedAt} by ${site.approvedBy ?? ''}` : 'not approved'],
        ['Last heartbeat', site.lastSeenAt ?? 'never'],
        ['Last inventory', site.lastInventoryAt ? `${site.lastInventoryAt} (taken ${site.inventoryTakenAt ?? ''}, ${site.inventoryItems ?? 0} items)` : 'none received'],
        ['Drift (open findings)', counts],
        ['Generated', new Date().toISOString()],
        ['Hub fingerprint', this.ctx.keyring.fingerprint],
      ],
      tables: [
        { heading: 'Key versions held (confirmed, not destroyed)', columns: SITE_REPORT_COLUMNS, rows },
        {
          heading: 'Open drift findings',
          columns: DRIFT_COLUMNS,
          rows: drift.findings.map((f) => [f.target, f.kind, textCell(f.key), textCell(f.version), textCell(f.label), textCell(f.expectedKcv), textCell(f.reportedKcv), f.firstSeenAt, f.lastSeenAt]),
        },
      ],
    };
  }
}
