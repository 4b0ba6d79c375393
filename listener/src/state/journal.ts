import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface JournalEntry {
  packageId: string;
  sequence: number;
  /** JetStream stream sequence the package arrived at: a redelivery has the same one, a re-injected copy does not. */
  streamSeq: number;
  outcome: string;
  /** The signed receipt, base64 of the encoded envelope, re-sent verbatim on redelivery. */
  receipt: string;
  /** SHA-256 (hex) of the envelope bytes the receipt answers; a redelivery must carry the same bytes. Absent in entries of older versions. */
  sha256?: string;
}

/**
 * Anti-replay window width (as in IPsec, RFC 4303 3.4.3): sequence numbers
 * above the highest accepted one are new; those within the window are new
 * only if not seen; older ones are replays. A window rather than strict
 * order lets several hub replicas publish concurrently without turning
 * benign reordering into rejections.
 */
export const REPLAY_WINDOW = 8192;

/**
 * The listener's memory of what it processed: append-only JSON lines,
 * compacted at open. Writes are flushed to disk in groups (every `syncMs`)
 * rather than per package: losing the last few entries in a crash is safe,
 * because an import repeated after a crash finds the key already present in
 * the target, so the journal never decides whether a key is imported twice.
 */
export class Journal {
  private readonly entries = new Map<string, JournalEntry>();
  private readonly window = new Set<number>();
  /** Sequences and package ids being processed right now: a concurrent copy must not pass the replay check too. */
  private readonly reservedSequences = new Set<number>();
  private readonly reservedPackages = new Set<string>();
  private last = 0;
  private fd: number;
  private dirty = false;
  private readonly timer: NodeJS.Timeout;

  private constructor(path: string, keep: number, syncMs: number) {
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        let entry: unknown;
        try {
          entry = JSON.parse(line);
        } catch {
          // A torn last line from a crash mid-write: that message was not acked and will come again.
          continue;
        }
        // A line that is not an entry (edited or damaged file) is skipped rather than trusted. Only the
        // entry's own fields are kept: anything else on the line (e.g. an object nested thousands deep,
        // which JSON.parse takes but JSON.stringify cannot write back; found by test/src/fuzz) is dropped.
        if (isJournalEntry(entry)) this.entries.set(entry.packageId, ownFields(entry));
      }
    }
    if (this.entries.size > keep) {
      const kept = [...this.entries.values()].sort((a, b) => a.sequence - b.sequence).slice(-keep);
      this.entries.clear();
      for (const e of kept) this.entries.set(e.packageId, e);
    }
    // The replay window from the entries kept (the last line of each package), which is what the file
    // written below holds: a superseded line must not move it until the next restart (found by test/src/fuzz).
    for (const e of [...this.entries.values()]) this.remember(e);
    const body = [...this.entries.values()].map((e) => JSON.stringify(e)).join('\n');
    writeFileSync(`${path}.tmp`, body ? body + '\n' : '', { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    this.fd = openSync(path, 'a', 0o600);
    this.timer = setInterval(() => this.sync(), syncMs);
    this.timer.unref();
  }

  static open(home: string, options: { keep?: number; syncMs?: number } = {}): Journal {
    return new Journal(join(home, 'journal.jsonl'), options.keep ?? 100_000, options.syncMs ?? 50);
  }

  get lastSequence(): number {
    return this.last;
  }

  get size(): number {
    return this.entries.size;
  }

  get(packageId: string): JournalEntry | undefined {
    return this.entries.get(packageId);
  }

  /** True when the sequence number was already used or is too old to tell. */
  isReplay(sequence: number): boolean {
    return sequence <= this.last - REPLAY_WINDOW || this.window.has(sequence) || this.reservedSequences.has(sequence);
  }

  /**
   * Claims a package's sequence number and id for processing; false when
   * either was used or is being used. Synchronous, so two concurrent copies
   * of one package cannot both succeed.
   */
  reserve(sequence: number, packageId: string): boolean {
    if (this.isReplay(sequence) || this.entries.has(packageId) || this.reservedPackages.has(packageId)) return false;
    this.reservedSequences.add(sequence);
    this.reservedPackages.add(packageId);
    return true;
  }

  /** Gives a claim back (the package will be retried) or drops it after `record`. */
  release(sequence: number, packageId: string): void {
    this.reservedSequences.delete(sequence);
    this.reservedPackages.delete(packageId);
  }

  record(entry: JournalEntry): void {
    writeSync(this.fd, JSON.stringify(entry) + '\n');
    this.dirty = true;
    this.remember(entry);
    this.release(entry.sequence, entry.packageId);
  }

  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    fdatasyncSync(this.fd);
  }

  close(): void {
    clearInterval(this.timer);
    this.sync();
    closeSync(this.fd);
  }

  private remember(e: JournalEntry): void {
    this.entries.set(e.packageId, e);
    this.window.add(e.sequence);
    if (e.sequence > this.last) {
      this.last = e.sequence;
      if (this.window.size > REPLAY_WINDOW * 2) {
        for (const s of this.window) if (s <= this.last - REPLAY_WINDOW) this.window.delete(s);
      }
    }
  }
}

function ownFields(e: JournalEntry): JournalEntry {
  const { packageId, sequence, streamSeq, outcome, receipt, sha256 } = e;
  return { packageId, sequence, streamSeq, outcome, receipt, ...(sha256 !== undefined ? { sha256 } : {}) };
}

function isJournalEntry(v: unknown): v is JournalEntry {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.packageId === 'string' &&
    e.packageId.length <= 64 &&
    Number.isSafeInteger(e.sequence) &&
    (e.sequence as number) > 0 &&
    Number.isSafeInteger(e.streamSeq) &&
    typeof e.outcome === 'string' &&
    typeof e.receipt === 'string' &&
    (e.sha256 === undefined || (typeof e.sha256 === 'string' && /^[0-9a-f]{64}$/.test(e.sha256)))
  );
}
