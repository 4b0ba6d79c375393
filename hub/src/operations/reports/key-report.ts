import { injectable } from 'tsyringe';
import { z } from 'zod';
import { KeyhubError } from '@keyhub/shared';
import { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { isoCell, textCell, type ReportColumn, type ReportDocument } from '../../reports/report-document';
import { keyByName } from '../../store/queries/key-lifecycle';
import { keyReportCount, keyReportPage, type KeyReportDbRow, type KeyRowPosition, type ReportKeyRow } from '../../store/queries/reports';
import { cloudImport } from '../keys/key-status';
import { allPages, checkRowLimit, decodeCursor, encodeCursor } from './report-cursor';

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);
const position = z.tuple([z.number().int().min(0), z.string().max(300), z.string().max(300)]);

function toRow(r: KeyReportDbRow): api.KeyReportRow {
  return {
    version: r.version,
    versionState: r.version_state,
    hubKcv: r.hub_kcv,
    listenerId: r.listener_id,
    target: r.target,
    state: r.state,
    queuedAt: iso(r.queued_at),
    pushedAt: iso(r.pushed_at),
    lastSentAt: iso(r.last_sent_at),
    confirmedAt: iso(r.confirmed_at),
    targetKcv: r.target_kcv,
    kcvConfirmed: r.target_kcv === null ? null : r.target_kcv === r.hub_kcv,
    requestedBy: r.requester ?? r.created_by,
    approvedBy: r.approvers ?? [],
    approvalRequestId: r.request_id,
    cloud: cloudImport(r.cloud),
  };
}

const positionOf = (r: KeyReportDbRow): KeyRowPosition => ({ version: r.version, listenerId: r.listener_id ?? '', target: r.target ?? '' });

export const KEY_REPORT_COLUMNS: ReportColumn[] = [
  { header: 'version', label: 'ver', width: 3 },
  { header: 'version_state', label: 'version state', width: 7 },
  { header: 'hub_kcv', label: 'hub KCV', width: 5 },
  { header: 'listener_id', label: 'site', width: 10 },
  { header: 'target', width: 6 },
  { header: 'state', width: 6 },
  { header: 'queued_at', label: 'queued', width: 12, print: false },
  { header: 'last_sent_at', width: 1, print: false },
  { header: 'pushed_at', label: 'pushed', width: 12 },
  { header: 'confirmed_at', label: 'confirmed', width: 12 },
  { header: 'target_kcv', label: 'target KCV', width: 5 },
  { header: 'kcv_confirmed', label: 'KCV ok', width: 4 },
  { header: 'requested_by', label: 'requested by', width: 8 },
  { header: 'approved_by', label: 'approved by', width: 10 },
  { header: 'approval_request_id', width: 1, print: false },
  // A cloud target's import (issue 12): what its confirming receipt said. In JSON and CSV; the PDF keeps its columns.
  { header: 'cloud_key_id', width: 1, print: false },
  { header: 'cloud_version_id', width: 1, print: false },
  { header: 'cloud_import_state', width: 1, print: false },
  { header: 'cloud_wrapping', width: 1, print: false },
];

function cellsOf(r: api.KeyReportRow): string[] {
  return [
    textCell(r.version),
    r.versionState,
    r.hubKcv,
    textCell(r.listenerId),
    textCell(r.target),
    textCell(r.state),
    isoCell(r.queuedAt),
    isoCell(r.lastSentAt),
    isoCell(r.pushedAt),
    isoCell(r.confirmedAt),
    textCell(r.targetKcv),
    textCell(r.kcvConfirmed),
    textCell(r.requestedBy),
    r.approvedBy.join(';'),
    textCell(r.approvalRequestId),
    textCell(r.cloud?.keyId ?? null),
    textCell(r.cloud?.versionId ?? null),
    textCell(r.cloud?.importState ?? null),
    textCell(r.cloud?.wrapping ?? null),
  ];
}

/**
 * Per key, for compliance: every version at every site and target, its
 * state, when it was queued, pushed and confirmed, whether the target's KCV
 * is the hub's, who asked for it and who approved it. Rule: metadata only
 * (KCVs, never material); read-only; keyset-paged so that any number of
 * versions and sites is read a bounded page at a time.
 */
@injectable()
export class KeyReport {
  constructor(private readonly ctx: HubContext) {}

  private async key(name: string): Promise<ReportKeyRow> {
    const k = await keyByName(this.ctx.ds, name);
    if (!k) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${name}"`);
    return k;
  }

  async page(name: string, q: { after?: string; limit: number }): Promise<api.KeyReport> {
    const k = await this.key(name);
    const after = decodeCursor(q.after, position);
    const rows = await keyReportPage(this.ctx.ds, k, after && { version: after[0], listenerId: after[1], target: after[2] }, q.limit);
    const last = rows.length === q.limit ? positionOf(rows[rows.length - 1]) : undefined;
    return {
      report: 'key',
      generatedAt: new Date().toISOString(),
      hubFingerprint: this.ctx.keyring.fingerprint,
      next: last ? encodeCursor([last.version, last.listenerId, last.target]) : null,
      key: {
        id: k.id,
        name: k.name,
        algorithm: k.algorithm,
        state: k.state,
        currentVersion: k.current_version,
        sensitive: k.sensitive,
        createdBy: k.created_by,
        createdAt: new Date(k.created_at).toISOString(),
      },
      rows: rows.map(toRow),
    };
  }

  /** The whole report for CSV or PDF, refused up front when it exceeds that format's row limit. */
  async document(name: string, format: 'csv' | 'pdf'): Promise<ReportDocument> {
    const k = await this.key(name);
    checkRowLimit(format, await keyReportCount(this.ctx.ds, k.id), api.REPORT_LIMITS);
    const pageSize = api.REPORT_LIMITS.defaultPageRows;
    const ds = this.ctx.ds;
    const rows = (async function* () {
      for await (const r of allPages((after) => keyReportPage(ds, k, after, pageSize), positionOf, pageSize)) yield cellsOf(toRow(r));
    })();
    return {
      name: `key-${k.name.replace(/[^A-Za-z0-9._-]/g, '_')}`,
      title: `Key report: ${k.name}`,
      facts: [
        ['Key', `${k.name} (${k.algorithm}, ${k.state}, current version ${k.current_version}${k.sensitive ? ', sensitive' : ''})`],
        ['Created', `${isoCell(k.created_at)} by ${k.created_by}`],
        ['Generated', new Date().toISOString()],
        ['Hub fingerprint', this.ctx.keyring.fingerprint],
      ],
      tables: [
        {
          heading: 'Versions at sites and targets',
          note: 'KCV ok: the KCV computed at the target equals the hub KCV. Approved by: approvers of the dual-control request the distribution came from.',
          columns: KEY_REPORT_COLUMNS,
          rows,
        },
      ],
    };
  }
}
