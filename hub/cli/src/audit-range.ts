import { api, type ExportRange, type StoredCheckpoint } from '@keyhub/protocol';
import type { HubClient } from './client';
import { CliError } from './errors';

/*
 * `--from/--to` for `keyhub audit export` and `keyhub audit verify`: a
 * sequence number or a time, resolved through the API to the window of
 * events that the signed checkpoints can vouch for (export-format.ts says
 * why the window reaches past the range on both sides).
 */

export interface RangeAsked {
  from?: string;
  to?: string;
}

/** The events to fetch and the checkpoints to keep for a range; `range` undefined for the whole ledger. */
export interface LedgerWindow {
  range?: ExportRange;
  /** First event to fetch (the range's anchor), and the last (undefined: to the head). */
  start: number;
  end?: number;
  checkpoints: StoredCheckpoint[];
}

type Bound = { seq: number } | { time: Date };

function parseBound(text: string, flag: string): Bound {
  if (/^\d{1,15}$/.test(text)) {
    const seq = Number(text);
    if (seq < 1) throw new CliError('INPUT_INVALID', `${flag} ${text}: sequence numbers start at 1`);
    return { seq };
  }
  const time = new Date(text);
  if (Number.isNaN(time.getTime())) throw new CliError('INPUT_INVALID', `${flag} ${text}: give a sequence number or a time (ISO 8601, e.g. 2026-11-01T00:00:00Z)`);
  return { time };
}

/** The first event dated at or after `time`, or undefined when none is. */
async function firstSeqSince(c: HubClient, time: Date): Promise<number | undefined> {
  const page = await c.get(`/v1/audit/events?after=0&limit=1&since=${encodeURIComponent(time.toISOString())}`, api.auditEventsPage);
  return page.events[0]?.seq;
}

/**
 * Resolves the bounds: `--from <time>` is the first event dated at or after
 * it, `--to <time>` the last event before the first one dated after it.
 * Then widens to the checkpoints: back to the last one at or before `from`,
 * forward to the first one at or after `to`.
 */
export async function resolveWindow(c: HubClient, checkpoints: StoredCheckpoint[], asked: RangeAsked): Promise<LedgerWindow> {
  const sorted = [...checkpoints].sort((a, b) => a.seq - b.seq);
  if (asked.from === undefined && asked.to === undefined) return { start: 1, checkpoints: sorted };
  const fromBound = asked.from === undefined ? { seq: 1 } : parseBound(asked.from, '--from');
  const toBound = asked.to === undefined ? undefined : parseBound(asked.to, '--to');
  const from = 'seq' in fromBound ? fromBound.seq : await firstSeqSince(c, fromBound.time);
  if (from === undefined) throw new CliError('AUDIT_RANGE_EMPTY', `no audit event is dated at or after ${asked.from}`);
  let to: number | undefined;
  if (toBound && 'seq' in toBound) to = toBound.seq;
  else if (toBound) {
    const after = await firstSeqSince(c, new Date(toBound.time.getTime() + 1));
    to = after === undefined ? undefined : after - 1;
  }
  if (to !== undefined && to < from) throw new CliError('AUDIT_RANGE_EMPTY', `the range is empty: it ends (event ${to}) before it starts (event ${from})`);
  const anchor = [...sorted].reverse().find((cp) => cp.seq <= from);
  const closing = to === undefined ? undefined : sorted.find((cp) => cp.seq >= to);
  const start = anchor?.seq ?? 1;
  const end = to === undefined ? undefined : (closing?.seq ?? to);
  const kept = sorted.filter((cp) => cp.seq >= start && (end === undefined || cp.seq <= end));
  return { start, end, checkpoints: kept, range: { from, to: to ?? null, start, toHead: true, asked: { ...asked } } };
}
