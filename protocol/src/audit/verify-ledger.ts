import type { KeyObject } from 'node:crypto';
import { auditHash, GENESIS_HASH } from './chain-hash';
import { checkpointDigest, checkpointLinkProblems, checkpointSignatureValid, isChainedCheckpoint, publicKeyObject, type StoredCheckpoint } from './checkpoint-chain';
import { classifyBreak, judgeCheckpointMismatch, judgeEndsBefore, type ChainAnchor, type TamperFinding, type TamperKind } from './tamper-kind';
import { witnessBySeq, type StoredAuditEvent, type WitnessEntry } from './verify-chain';

export interface LedgerVerification {
  ok: boolean;
  /** Events that verified (all of them when ok). */
  events: number;
  checkpoints: number;
  /** The first event checked: 1, or the checkpointed event a range export starts at. */
  start: number;
  head?: { seq: number; hash: string };
  firstBad?: { seq: number; id: string | null };
  kind?: TamperKind;
  detail?: string;
  /** With a site's copy: how many of its checkpoints fall in the ledger checked, and the last event they cover. */
  witnessed?: { checkpoints: number; lastSeq: number };
}

export interface LedgerOptions {
  /** Checkpoints a site kept (its witness copy), each checked under the trusted key. */
  witness?: StoredCheckpoint[];
  /**
   * A range export: its first event, which must be the event of a signed
   * checkpoint in `checkpoints` (its own hash covers its previous hash, so
   * the signature ties the range to the chain before it). Default 1.
   */
  start?: number;
  /** The ledger goes on after the last event given (a range export): a site's checkpoint beyond it is not a loss. */
  partial?: boolean;
}

/** How many rows past the current one the walker keeps, for classifyBreak's rules. */
const LOOKAHEAD = 4;

/** Lets an iterable be read with lookahead, without holding more than a few rows. */
class RowQueue {
  readonly rows: StoredAuditEvent[] = [];
  private readonly it: AsyncIterator<StoredAuditEvent> | Iterator<StoredAuditEvent>;
  private done = false;

  constructor(events: AsyncIterable<StoredAuditEvent> | Iterable<StoredAuditEvent>) {
    this.it = Symbol.asyncIterator in events ? events[Symbol.asyncIterator]() : events[Symbol.iterator]();
  }

  async fill(n: number): Promise<void> {
    while (!this.done && this.rows.length < n) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.rows.push(r.value);
    }
  }
}

interface Signed {
  seq: number;
  hash: string;
  at?: string;
}

/**
 * Verifies a ledger as an auditor would, and on failure says where and how
 * it was tampered with (tamper-kind.ts). Same trust rules as
 * verifyAuditChain: checkpoints are checked under `trustedKey` (pinned by
 * fingerprint, or the key a site pinned), never a key from the data; each
 * checkpoint must match the event at its seq and link to the one before;
 * a site's checkpoint must be held unchanged by the ledger. Rules of its
 * own: the first event that is not in place is classified with a few rows
 * of lookahead; a signed checkpoint that disagrees with an otherwise
 * consistent chain is judged by the events' dates against the signature's;
 * a ledger that ends before a checkpoint the verifier holds is truncated.
 */
export async function verifyAuditLedger(
  events: AsyncIterable<StoredAuditEvent> | Iterable<StoredAuditEvent>,
  checkpoints: StoredCheckpoint[],
  trustedKey: Buffer | KeyObject,
  options: LedgerOptions = {},
): Promise<LedgerVerification> {
  const key = publicKeyObject(trustedKey);
  const start = options.start ?? 1;
  const sorted = [...checkpoints].sort((a, b) => a.seq - b.seq);
  const first = sorted[0];
  const problems = checkpointLinkProblems(sorted, start > 1 && first && isChainedCheckpoint(first) ? { seq: first.prevSeq, digest: first.prevDigest } : undefined);
  for (const cp of sorted) if (!problems.has(cp.seq) && !checkpointSignatureValid(cp, key)) problems.set(cp.seq, `checkpoint at event ${cp.seq}: signature does not verify under the pinned hub key`);
  const bySeq = new Map(sorted.map((c) => [c.seq, c]));
  const witness = witnessBySeq(options.witness ?? [], key);
  const covers = coverList(sorted, problems, witness);
  const base = { checkpoints: checkpoints.length, start };
  const queue = new RowQueue(events);
  let count = 0;
  let witnessedCount = 0;
  let witnessedLast = 0;
  const finish = (f: TamperFinding | undefined, head?: ChainAnchor): LedgerVerification => ({
    ok: f === undefined,
    events: count,
    ...base,
    ...(f ? { firstBad: { seq: f.seq, id: f.id }, kind: f.kind, detail: f.detail } : {}),
    ...(head && head.seq >= start ? { head } : {}),
    ...(options.witness ? { witnessed: { checkpoints: witnessedCount, lastSeq: witnessedLast } } : {}),
  });

  let anchor: ChainAnchor = { seq: 0, hash: GENESIS_HASH };
  if (start > 1) {
    await queue.fill(1);
    const opening = openRange(queue.rows[0], start, bySeq.get(start), problems.get(start));
    if ('kind' in opening) return finish(opening);
    anchor = opening;
    queue.rows.shift();
    count++;
  }
  let lastMatched = anchor.seq;
  let writtenAfter: { seq: number; hash: string } | undefined;
  let coverAt = 0;

  for (;;) {
    await queue.fill(LOOKAHEAD);
    const [r, next] = queue.rows;
    if (!r) break;
    const placed = r.seq === anchor.seq + 1 && r.prevHash === anchor.hash && auditHash(anchor.hash, r) === r.hash;
    if (!placed) return finish(classifyBreak(anchor, queue.rows));
    // A checkpoint record that is not the hub's is wrong whatever the events around it are.
    const w = witness.get(r.seq);
    const cp = bySeq.get(r.seq);
    const problem = w && 'problem' in w ? w.problem : cp && problems.get(r.seq);
    if (problem) return finish({ kind: 'forged', seq: r.seq, id: r.hash, detail: problem });
    if (next && next.prevHash !== r.hash) return finish(classifyBreak(anchor, queue.rows));

    while (coverAt < covers.length && covers[coverAt].seq < r.seq) coverAt++;
    const cover = covers[coverAt];
    if (!writtenAfter && cover?.at !== undefined && r.at.getTime() > Date.parse(cover.at)) writtenAfter = { seq: r.seq, hash: r.hash };
    const found = w ? witnessFinding(r, w, cp, lastMatched, writtenAfter) : undefined;
    if (found) return finish(found);
    if (w) [witnessedCount, witnessedLast] = [witnessedCount + 1, r.seq];
    if (cp && cp.hash !== r.hash) return finish(judgeCheckpointMismatch(cp, lastMatched, 'the hub', writtenAfter));
    if (w || cp) [lastMatched, writtenAfter] = [r.seq, undefined];
    anchor = { seq: r.seq, hash: r.hash };
    queue.rows.shift();
    count++;
  }
  return finish(endFinding(anchor.seq, sorted, witness, options.partial === true), anchor);
}

/** A range's first event: at `start`, under a valid checkpoint, reproducing its signed hash. */
function openRange(row: StoredAuditEvent | undefined, start: number, cp: StoredCheckpoint | undefined, problem: string | undefined): ChainAnchor | TamperFinding {
  if (!cp) return { kind: 'forged', seq: start, id: row?.hash ?? null, detail: `the range starts at event ${start}, but no checkpoint in the file vouches for it` };
  if (problem) return { kind: 'forged', seq: start, id: cp.hash, detail: problem };
  if (!row || row.seq > start) return { kind: 'deleted', seq: start, id: cp.hash, detail: `the range's first event ${start}, which its checkpoint signed, is missing` };
  if (row.seq < start) return { kind: 'inserted', seq: row.seq, id: row.hash, detail: `event ${row.seq} comes before the range's first event ${start}` };
  if (auditHash(row.prevHash, row) !== row.hash) return { kind: 'changed', seq: start, id: row.hash, detail: `the content of event ${start} no longer produces its stored hash` };
  if (row.hash !== cp.hash) return judgeCheckpointMismatch(cp, start - 1, 'the hub');
  return { seq: start, hash: row.hash };
}

/** A site's checkpoint at this event: valid, for this very event, and held unchanged by the hub. */
function witnessFinding(
  r: StoredAuditEvent,
  w: WitnessEntry,
  held: StoredCheckpoint | undefined,
  lastMatched: number,
  writtenAfter: { seq: number; hash: string } | undefined,
): TamperFinding | undefined {
  if ('problem' in w) return { kind: 'forged', seq: r.seq, id: r.hash, detail: w.problem };
  if (w.cp.hash !== r.hash) return judgeCheckpointMismatch(w.cp, lastMatched, "the site's copy", writtenAfter);
  if (!held || checkpointDigest(held) !== w.digest) {
    return {
      kind: 'forged',
      seq: r.seq,
      id: r.hash,
      detail: `the hub's checkpoint at event ${r.seq} is ${held ? 'not the one' : 'missing, unlike in'} the site's copy: a checkpoint was removed or replaced`,
    };
  }
  return undefined;
}

/** After the last event: a checkpoint the verifier holds beyond it means the ledger was cut back. */
function endFinding(last: number, sorted: StoredCheckpoint[], witness: Map<number, WitnessEntry>, partial: boolean): TamperFinding | undefined {
  if (!partial) {
    const lost = [...witness.entries()].filter(([s]) => s > last).sort((a, b) => a[0] - b[0])[0];
    if (lost) return judgeEndsBefore(last, 'cp' in lost[1] ? lost[1].cp : { seq: lost[0], hash: '' }, "a site's copy");
  }
  const beyond = sorted.find((c) => c.seq > last);
  if (beyond) return judgeEndsBefore(last, beyond, 'the ledger itself');
  return undefined;
}

/** Valid signed checkpoints (the ledger's and the sites'), by seq, with the time each was signed. */
function coverList(sorted: StoredCheckpoint[], problems: Map<number, string>, witness: Map<number, WitnessEntry>): Signed[] {
  const out = new Map<number, Signed>();
  for (const cp of sorted) if (!problems.has(cp.seq)) out.set(cp.seq, cp);
  for (const [seq, w] of witness) if ('cp' in w && !out.has(seq)) out.set(seq, w.cp);
  return [...out.values()].filter((c) => c.at !== undefined).sort((a, b) => a.seq - b.seq);
}
