import { z } from 'zod';
import { driftFindingView, driftReport } from './placements';
import { cloudImportView } from './keys';
import { kcv, keyName, listenerId, sha256Hex, shortText, targetName, timestamp, uuid } from './common';

/*
 * Reports for compliance teams: which version of which key is where, since
 * when, who asked for it and who approved it (per key); what a site holds
 * and whether it drifted (per site); and a ledger extract for a period with
 * the checkpoints that cover it. JSON pages through the rows by cursor; CSV
 * and PDF are rendered by the hub from the same rows, page by page.
 */

export const REPORT_FORMATS = ['json', 'csv', 'pdf'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/**
 * Bounds. A JSON page holds at most `maxPageRows` rows (follow `next`). CSV
 * streams page by page, so its size is not held in memory, but a report
 * with more than `maxCsvRows` rows is refused (REPORT_TOO_LARGE) rather than
 * left running for minutes; PDF, a document for people to read, stops at
 * `maxPdfRows` rows (use CSV, or narrow the period, beyond that).
 */
export const REPORT_LIMITS = { maxPageRows: 5000, defaultPageRows: 1000, maxCsvRows: 1_000_000, maxPdfRows: 10_000, maxDriftFindings: 1000 } as const;

export const reportFormat = z.enum(REPORT_FORMATS).default('json');
/** An opaque position in a report's row order: the last row of the previous page. */
export const reportCursor = z
  .string()
  .max(1024)
  .regex(/^[A-Za-z0-9_-]+$/);
const pageLimit = z.coerce.number().int().min(1).max(REPORT_LIMITS.maxPageRows).default(REPORT_LIMITS.defaultPageRows);

export const reportKeyParams = z.strictObject({ name: keyName });
export const reportSiteParams = z.strictObject({ id: listenerId });
export const reportQuery = z.strictObject({ format: reportFormat, after: reportCursor.optional(), limit: pageLimit });
export type ReportQuery = z.infer<typeof reportQuery>;
export const ledgerReportQuery = z
  .strictObject({
    from: timestamp,
    to: timestamp,
    format: reportFormat,
    /** The last event sequence number of the previous page. */
    after: z.coerce.number().int().min(0).default(0),
    limit: pageLimit,
  })
  .refine((q) => Date.parse(q.from) <= Date.parse(q.to), { message: '`from` must not be after `to`' });
export type LedgerReportQuery = z.infer<typeof ledgerReportQuery>;

/** Who made a report, from which hub, when: printed on every CSV/PDF too. */
const reportHeader = {
  generatedAt: timestamp,
  /** The hub signing key's fingerprint: the one sites pin and auditors compare out of band. */
  hubFingerprint: z.string().max(200),
  next: reportCursor.nullable(),
};

/** One key version at one site and target; a version sent nowhere has one row with no site. */
export const keyReportRow = z.strictObject({
  version: z.number().int().min(1),
  versionState: shortText,
  hubKcv: kcv,
  listenerId: listenerId.nullable(),
  target: targetName.nullable(),
  state: shortText.nullable(),
  /** When the distribution was asked for (queued). */
  queuedAt: timestamp.nullable(),
  /** When the hub issued the first signed package for it. */
  pushedAt: timestamp.nullable(),
  /** When the hub last published a package on NATS (re-sends move it). */
  lastSentAt: timestamp.nullable(),
  confirmedAt: timestamp.nullable(),
  targetKcv: kcv.nullable(),
  /** The KCV computed at the target equals the hub's: null while there is no receipt. */
  kcvConfirmed: z.boolean().nullable(),
  requestedBy: shortText.nullable(),
  /** Approvers of the dual-control request that led to this distribution (none without one). */
  approvedBy: z.array(shortText).max(64),
  approvalRequestId: uuid.nullable(),
  /** A cloud target's import as its confirming receipt told it (key and version ids, import state, wrapping); null elsewhere. */
  cloud: cloudImportView.nullable(),
});
export type KeyReportRow = z.infer<typeof keyReportRow>;

export const keyReport = z.strictObject({
  report: z.literal('key'),
  ...reportHeader,
  key: z.strictObject({ id: uuid, name: keyName, algorithm: shortText, state: shortText, currentVersion: z.number().int().min(1), sensitive: z.boolean(), createdBy: shortText, createdAt: timestamp }),
  rows: z.array(keyReportRow).max(REPORT_LIMITS.maxPageRows),
});
export type KeyReport = z.infer<typeof keyReport>;

/** A key version the site holds: confirmed there and not destroyed. */
export const siteReportRow = z.strictObject({
  key: keyName,
  version: z.number().int().min(1),
  versionState: shortText,
  target: targetName,
  hubKcv: kcv,
  targetKcv: kcv.nullable(),
  kcvConfirmed: z.boolean(),
  pushedAt: timestamp.nullable(),
  confirmedAt: timestamp.nullable(),
  requestedBy: shortText,
});
export type SiteReportRow = z.infer<typeof siteReportRow>;

export const siteReport = z.strictObject({
  report: z.literal('site'),
  ...reportHeader,
  site: z.strictObject({
    id: listenerId,
    state: shortText,
    hostname: shortText.nullable(),
    approvedAt: timestamp.nullable(),
    approvedBy: shortText.nullable(),
    /** Last heartbeat (or any signed message) from the site. */
    lastSeenAt: timestamp.nullable(),
    /** Last complete inventory the site reported, and when it was taken there. */
    lastInventoryAt: timestamp.nullable(),
    inventoryTakenAt: timestamp.nullable(),
    inventoryItems: z.number().int().min(0).nullable(),
  }),
  /** Open drift findings from the last drift scan (at most REPORT_LIMITS.maxDriftFindings), with counts per kind. */
  drift: z.strictObject({
    counts: driftReport.shape.counts,
    findings: z.array(driftFindingView).max(REPORT_LIMITS.maxDriftFindings),
  }),
  rows: z.array(siteReportRow).max(REPORT_LIMITS.maxPageRows),
});
export type SiteReport = z.infer<typeof siteReport>;

export const ledgerReportRow = z.strictObject({
  seq: z.number().int().min(1),
  at: timestamp,
  actor: shortText,
  action: shortText,
  subject: shortText,
  details: z.record(z.string(), z.unknown()),
  prevHash: sha256Hex,
  hash: sha256Hex,
  /** The first signed checkpoint at or after this event: the signature that covers it (null: not yet covered). */
  checkpointSeq: z.number().int().min(1).nullable(),
});
export type LedgerReportRow = z.infer<typeof ledgerReportRow>;

export const ledgerCheckpoint = z.strictObject({
  seq: z.number().int().min(1),
  hash: sha256Hex,
  at: timestamp.nullable(),
  signature: z.string().max(1024),
  prevSeq: z.number().int().min(0).nullable(),
  prevDigest: sha256Hex.nullable(),
});
export type LedgerCheckpoint = z.infer<typeof ledgerCheckpoint>;

export const ledgerReport = z.strictObject({
  report: z.literal('ledger'),
  ...reportHeader,
  period: z.strictObject({ from: timestamp, to: timestamp }),
  /** All events of the period (not only this page): count and sequence range. */
  events: z.strictObject({ count: z.number().int().min(0), firstSeq: z.number().int().nullable(), lastSeq: z.number().int().nullable() }),
  /** The last checkpoint before the period (its anchor), those inside it, and the first after its last event (its seal). */
  checkpoints: z.array(ledgerCheckpoint).max(100_000),
  rows: z.array(ledgerReportRow).max(REPORT_LIMITS.maxPageRows),
});
export type LedgerReport = z.infer<typeof ledgerReport>;
