import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { api, AUDIT_EXPORT_VERSION, publicKeyFingerprint, type AuditDetails, type ExportRange, type StoredAuditEvent } from '@keyhub/protocol';
import { resolveWindow, type RangeAsked } from './audit-range';
import type { HubClient } from './client';
import { CliError } from './errors';

/*
 * Writing the audit export (format in protocol/src/audit/export-format.ts)
 * from the hub's API; audit-file.ts reads it back with no hub.
 */

export interface ExportSummary {
  file: string;
  fingerprint: string;
  events: number;
  checkpoints: number;
  head?: { seq: number; hash: string };
  range?: ExportRange;
}

/**
 * A write stream reports failure (cannot create the file, disk full) by an
 * event, possibly while we wait on the database; remember it and raise it at
 * the next write, where the caller can handle it.
 */
class ExportWriter {
  private readonly out: WriteStream;
  private failure: unknown;

  constructor(private readonly file: string) {
    this.out = createWriteStream(file, { encoding: 'utf8' });
    this.out.on('error', (err) => (this.failure ??= err));
  }

  async line(value: unknown): Promise<void> {
    this.check();
    if (!this.out.write(`${JSON.stringify(value)}\n`)) await this.settle(once(this.out, 'drain'));
  }

  async end(): Promise<void> {
    this.check();
    const finished = once(this.out, 'finish');
    this.out.end();
    await this.settle(finished);
  }

  destroy(): void {
    this.out.destroy();
  }

  private async settle(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      this.failure ??= err;
    }
    this.check();
  }

  private check(): void {
    if (this.failure !== undefined) throw new CliError('INPUT_INVALID', `cannot write audit export ${this.file}`);
  }
}

/**
 * Writes the chain as the hub's API hands it out, page by page, so memory
 * does not grow with it; with --from/--to, the window of the range
 * (audit-range.ts). The header goes first, so a range's resolved end and
 * whether it reached the head are known from the API before any event.
 */
export async function writeAuditExport(c: HubClient, file: string, asked: RangeAsked = {}): Promise<ExportSummary> {
  // Checkpoints before events: the chain only grows, so every checkpoint read now is covered by the events read after.
  const cps = await c.get('/v1/audit/checkpoints', api.checkpointList);
  const signingKey = Buffer.from(cps.signingKey, 'base64');
  const fingerprint = publicKeyFingerprint(signingKey);
  const window = await resolveWindow(c, cps.checkpoints, asked);
  const range = window.range && (await closeRange(c, window.range, window.end));
  const out = new ExportWriter(file);
  let events = 0;
  let head: ExportSummary['head'];
  try {
    await out.line({ type: 'header', version: AUDIT_EXPORT_VERSION, hubSigningKey: cps.signingKey, fingerprint, ...(range ? { range } : {}) });
    for await (const e of apiAuditEvents(c, window.start - 1, window.end)) {
      await out.line({ type: 'event', seq: e.seq, at: e.at.toISOString(), actor: e.actor, action: e.action, subject: e.subject, details: e.details, prevHash: e.prevHash, hash: e.hash });
      events++;
      head = { seq: e.seq, hash: e.hash };
    }
    for (const cp of window.checkpoints) await out.line({ type: 'checkpoint', ...cp });
    await out.end();
  } finally {
    out.destroy();
  }
  return { file, fingerprint, events, checkpoints: window.checkpoints.length, head, ...(range ? { range } : {}) };
}

/** Fills in a range's end when it runs to the head, and whether events follow the window's end. */
export async function closeRange(c: HubClient, range: ExportRange, end: number | undefined): Promise<ExportRange> {
  if (end === undefined) return { ...range, toHead: true };
  const after = await c.get(`/v1/audit/events?after=${end}&limit=1`, api.auditEventsPage);
  return { ...range, toHead: after.events.length === 0 };
}

/** The chain through the API, oldest first, a page at a time: the events after `after`, up to `end` (default: the head). */
export async function* apiAuditEvents(c: HubClient, after = 0, end?: number): AsyncGenerator<StoredAuditEvent> {
  for (;;) {
    const page = await c.get(`/v1/audit/events?after=${after}&limit=5000`, api.auditEventsPage);
    for (const e of page.events) {
      if (end !== undefined && e.seq > end) return;
      yield { seq: e.seq, at: new Date(e.at), actor: e.actor, action: e.action, subject: e.subject, details: e.details as AuditDetails, prevHash: e.prevHash, hash: e.hash };
    }
    if (page.next === null) return;
    after = page.next;
  }
}
