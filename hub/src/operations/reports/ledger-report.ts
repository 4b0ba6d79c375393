import { injectable } from 'tsyringe';
import { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { isoCell, textCell, type ReportColumn, type ReportDocument } from '../../reports/report-document';
import { coveringCheckpoints, ledgerPage, ledgerSpan, type LedgerCheckpointDbRow, type LedgerDbRow, type LedgerSpan } from '../../store/queries/reports';
import { allPages, checkRowLimit } from './report-cursor';

function toRow(r: LedgerDbRow): api.LedgerReportRow {
  return {
    seq: Number(r.seq),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    details: r.details,
    prevHash: r.prev_hash,
    hash: r.hash,
    checkpointSeq: r.checkpoint_seq === null ? null : Number(r.checkpoint_seq),
  };
}

function toCheckpoint(c: LedgerCheckpointDbRow): api.LedgerCheckpoint {
  return {
    seq: Number(c.seq),
    hash: c.hash,
    at: c.at ? new Date(c.at).toISOString() : null,
    signature: c.signature,
    prevSeq: c.prev_seq === null ? null : Number(c.prev_seq),
    prevDigest: c.prev_digest,
  };
}

// Widths chosen so a 64-digit hash prints whole at 7 pt on A4 landscape; long subjects and details end in an ellipsis (whole in the CSV).
export const LEDGER_COLUMNS: ReportColumn[] = [
  { header: 'seq', width: 3 },
  { header: 'at', width: 10 },
  { header: 'actor', width: 8 },
  { header: 'action', width: 10 },
  { header: 'subject', width: 11 },
  { header: 'details', width: 12 },
  { header: 'prev_hash', width: 1, print: false },
  { header: 'hash', width: 33 },
  { header: 'checkpoint_seq', label: 'checkpoint', width: 5 },
];

const CHECKPOINT_COLUMNS: ReportColumn[] = [
  { header: 'seq', width: 5 },
  { header: 'at', width: 11 },
  { header: 'hash', width: 33 },
  { header: 'prev_seq', label: 'previous', width: 5 },
  { header: 'signature', width: 37 },
];

const cellsOf = (r: api.LedgerReportRow): string[] => [textCell(r.seq), r.at, r.actor, r.action, r.subject, JSON.stringify(r.details), r.prevHash, r.hash, textCell(r.checkpointSeq)];

/**
 * A ledger extract for auditors: the audit events dated in a period, in
 * chain order with their hashes, each with the checkpoint whose signature
 * covers it, and the checkpoints around the period (the one before it, the
 * ones inside, the first after its last event), so the extract can be
 * checked against the hub's signatures. Rule: read-only; hands out data,
 * never a verdict (`keyhub audit verify` checks the chain).
 */
@injectable()
export class LedgerReport {
  constructor(private readonly ctx: HubContext) {}

  private async checkpoints(span: LedgerSpan): Promise<api.LedgerCheckpoint[]> {
    if (span.first_seq === null || span.last_seq === null) return [];
    return (await coveringCheckpoints(this.ctx.ds, span.first_seq, span.last_seq)).map(toCheckpoint);
  }

  async page(q: { from: string; to: string; after: number; limit: number }): Promise<api.LedgerReport> {
    const from = new Date(q.from);
    const to = new Date(q.to);
    const span = await ledgerSpan(this.ctx.ds, from, to);
    // Start at the period's first event: the index walk then skips the chain before it.
    const after = Math.max(q.after, (span.first_seq ?? 1) - 1);
    const [rows, checkpoints] = await Promise.all([ledgerPage(this.ctx.ds, from, to, after, q.limit), this.checkpoints(span)]);
    return {
      report: 'ledger',
      generatedAt: new Date().toISOString(),
      hubFingerprint: this.ctx.keyring.fingerprint,
      next: rows.length === q.limit ? String(rows[rows.length - 1].seq) : null,
      period: { from: from.toISOString(), to: to.toISOString() },
      events: { count: span.count, firstSeq: span.first_seq, lastSeq: span.last_seq },
      checkpoints,
      rows: rows.map(toRow),
    };
  }

  /** The whole extract for CSV (the events) or PDF (events and checkpoints), refused up front past the format's row limit. */
  async document(q: { from: string; to: string }, format: 'csv' | 'pdf'): Promise<ReportDocument> {
    const from = new Date(q.from);
    const to = new Date(q.to);
    const span = await ledgerSpan(this.ctx.ds, from, to);
    checkRowLimit(format, span.count, api.REPORT_LIMITS);
    const checkpoints = await this.checkpoints(span);
    const pageSize = api.REPORT_LIMITS.defaultPageRows;
    const ds = this.ctx.ds;
    const start = (span.first_seq ?? 1) - 1;
    const rows = (async function* () {
      for await (const r of allPages<number, LedgerDbRow>(
        (after) => ledgerPage(ds, from, to, after ?? start, pageSize),
        (row) => Number(row.seq),
        pageSize,
      ))
        yield cellsOf(toRow(r));
    })();
    return {
      name: `ledger-${from.toISOString().slice(0, 10)}-${to.toISOString().slice(0, 10)}`,
      title: 'Ledger extract',
      facts: [
        ['Period', `${from.toISOString()} to ${to.toISOString()}`],
        ['Events', span.count === 0 ? 'none' : `${span.count} (sequence ${span.first_seq} to ${span.last_seq})`],
        ['Checkpoints', checkpoints.length === 0 ? 'none' : checkpoints.map((c) => c.seq).join(', ')],
        ['Generated', new Date().toISOString()],
        ['Hub fingerprint', this.ctx.keyring.fingerprint],
      ],
      tables: [
        {
          heading: 'Audit events',
          note: 'checkpoint: the first signed checkpoint at or after the event. Each event names its previous hash in the CSV and JSON (prev_hash).',
          columns: LEDGER_COLUMNS,
          rows,
        },
        { heading: 'Covering checkpoints', columns: CHECKPOINT_COLUMNS, rows: checkpoints.map((c) => [textCell(c.seq), isoCell(c.at), c.hash, textCell(c.prevSeq), c.signature]) },
      ],
    };
  }
}
