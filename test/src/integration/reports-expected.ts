import type { api } from '@keyhub/protocol';

/*
 * What the reports of reports.test.ts must hold, written from the scenario
 * (who did what, where) and the key versions as GET /v1/keys/:name shows
 * them, plus a small RFC 4180 reader: the test parses the CSV on its own
 * rather than with the library that wrote it.
 */

export interface Scenario {
  ALPHA: string;
  BETA: string;
  S1: string;
  S2: string;
  S3: string;
  alphaRequest: string;
}

export interface ExpectedKeyRow {
  version: number;
  versionState: string;
  hubKcv: string;
  listenerId: string | null;
  target: string | null;
  state: string | null;
  targetKcv: string | null;
  kcvConfirmed: boolean | null;
  requestedBy: string | null;
  approvedBy: string[];
  approvalRequestId: string | null;
}

function versionOf(detail: api.KeyDetail, version: number): { state: string; kcv: string } {
  const v = detail.versions.find((x) => x.version === version);
  if (!v) throw new Error(`${detail.key.name} has no version ${version}`);
  return { state: v.state, kcv: v.kcv };
}

/**
 * alpha v1: to S1 and S2 after ap1's and ap2's approval of ko's request, confirmed, then compromised.
 * beta v1: to S1, S2, S3 by ko, confirmed; beta v2 (ko's rotation) to the same three, confirmed at S1 and S2 only.
 */
export function expectedKeyRows(detail: api.KeyDetail, s: Scenario): ExpectedKeyRow[] {
  const row = (version: number, listenerId: string, confirmed: boolean, approval: boolean): ExpectedKeyRow => {
    const v = versionOf(detail, version);
    return {
      version,
      versionState: v.state,
      hubKcv: v.kcv,
      listenerId,
      target: 'hsm',
      state: confirmed ? 'confirmed' : 'queued',
      targetKcv: confirmed ? v.kcv : null,
      kcvConfirmed: confirmed ? true : null,
      requestedBy: 'ko',
      approvedBy: approval ? ['ap1', 'ap2'] : [],
      approvalRequestId: approval ? s.alphaRequest : null,
    };
  };
  if (detail.key.name === s.ALPHA) return [row(1, s.S1, true, true), row(1, s.S2, true, true)];
  return [row(1, s.S1, true, false), row(1, s.S2, true, false), row(1, s.S3, true, false), row(2, s.S1, true, false), row(2, s.S2, true, false), row(2, s.S3, false, false)];
}

export interface ExpectedSiteRow {
  key: string;
  version: number;
  versionState: string;
  target: string;
  hubKcv: string;
  kcvConfirmed: boolean;
  requestedBy: string;
}

/** What each site holds: the confirmed rows of both keys there (none is destroyed), by key name, version. */
export function expectedSiteRows(site: string, details: { alpha: api.KeyDetail; beta: api.KeyDetail }, s: Scenario): ExpectedSiteRow[] {
  const out: ExpectedSiteRow[] = [];
  for (const d of [details.alpha, details.beta]) {
    for (const r of expectedKeyRows(d, s)) {
      if (r.listenerId !== site || r.state !== 'confirmed') continue;
      out.push({ key: d.key.name, version: r.version, versionState: r.versionState, target: 'hsm', hubKcv: r.hubKcv, kcvConfirmed: true, requestedBy: 'ko' });
    }
  }
  return out;
}

export interface ExpectedLedgerRow {
  seq: number;
  action: string;
  actor: string;
  hash: string;
  prevHash: string;
  checkpointSeq: number | null;
}

/** The events dated in the period, each with the first checkpoint at or after it; the checkpoints from the one before to the first after. */
export function expectedLedger(events: api.AuditEventView[], checkpoints: number[], period: { from: string; to: string }): { rows: ExpectedLedgerRow[]; checkpoints: number[] } {
  const from = Date.parse(period.from);
  const to = Date.parse(period.to);
  const sorted = [...checkpoints].sort((a, b) => a - b);
  const rows = events
    .filter((e) => Date.parse(e.at) >= from && Date.parse(e.at) <= to)
    .map((e) => ({ seq: e.seq, action: e.action, actor: e.actor, hash: e.hash, prevHash: e.prevHash, checkpointSeq: sorted.find((c) => c >= e.seq) ?? null }));
  if (rows.length === 0) return { rows, checkpoints: [] };
  const first = rows[0].seq;
  const last = rows[rows.length - 1].seq;
  const anchor = sorted.filter((c) => c < first).pop();
  const seal = sorted.find((c) => c >= last);
  return { rows, checkpoints: sorted.filter((c) => (anchor === undefined || c >= anchor) && c <= (seal ?? last)) };
}

/** RFC 4180: comma-separated, CRLF or LF records, "..." fields with "" for a quote. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length) rows.push([...row, cell]);
  return rows;
}

type Cells = Record<string, string>;

/** The CSV columns the key scenario decides, as text. */
export const keyCsvRow = Object.assign(
  (c: Cells): string[] => [
    c.version,
    c.version_state,
    c.hub_kcv,
    c.listener_id,
    c.target,
    c.state,
    c.target_kcv,
    c.kcv_confirmed,
    c.requested_by,
    c.approved_by,
    c.approval_request_id,
    c.confirmed_at === '' ? 'no' : 'yes',
  ],
  {
    fromExpected: (r: ExpectedKeyRow): string[] => [
      String(r.version),
      r.versionState,
      r.hubKcv,
      r.listenerId ?? '',
      r.target ?? '',
      r.state ?? '',
      r.targetKcv ?? '',
      r.kcvConfirmed === null ? '' : r.kcvConfirmed ? 'yes' : 'no',
      r.requestedBy ?? '',
      r.approvedBy.join(';'),
      r.approvalRequestId ?? '',
      r.state === 'confirmed' ? 'yes' : 'no',
    ],
  },
);

export const siteCsvRow = Object.assign((c: Cells): string[] => [c.key, c.version, c.version_state, c.target, c.hub_kcv, c.target_kcv, c.kcv_confirmed, c.requested_by], {
  fromExpected: (r: ExpectedSiteRow): string[] => [r.key, String(r.version), r.versionState, r.target, r.hubKcv, r.hubKcv, 'yes', r.requestedBy],
});

export const ledgerCsvRow = Object.assign((c: Cells): string[] => [c.seq, c.action, c.actor, c.hash, c.prev_hash, c.checkpoint_seq], {
  fromExpected: (r: ExpectedLedgerRow): string[] => [String(r.seq), r.action, r.actor, r.hash, r.prevHash, r.checkpointSeq === null ? '' : String(r.checkpointSeq)],
});
