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
}

/**
 * The listener's durable memory of what it processed: append-only JSON lines,
 * fsynced per entry before the message is acked, so a crash can at worst
 * repeat an import (which the target absorbs) and never forget one.
 * Compacted at open to the most recent entries.
 */
export class Journal {
  private readonly entries = new Map<string, JournalEntry>();
  private last = 0;
  private fd: number;

  private constructor(path: string, keep: number) {
    if (existsSync(path)) {
      const lines = readFileSync(path, 'utf8').split('\n');
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          const e = JSON.parse(line) as JournalEntry;
          this.entries.set(e.packageId, e);
          this.last = Math.max(this.last, e.sequence);
        } catch {
          // A torn last line from a crash mid-write: the message was not acked, it will come again.
        }
      }
    }
    if (this.entries.size > keep) {
      const kept = [...this.entries.values()].sort((a, b) => a.sequence - b.sequence).slice(-keep);
      this.entries.clear();
      for (const e of kept) this.entries.set(e.packageId, e);
    }
    const tmp = `${path}.tmp`;
    const body = [...this.entries.values()].map((e) => JSON.stringify(e)).join('\n');
    writeFileSync(tmp, body ? body + '\n' : '', { mode: 0o600 });
    renameSync(tmp, path);
    this.fd = openSync(path, 'a', 0o600);
  }

  static open(home: string, keep = 100_000): Journal {
    return new Journal(join(home, 'journal.jsonl'), keep);
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

  record(entry: JournalEntry): void {
    writeSync(this.fd, JSON.stringify(entry) + '\n');
    fdatasyncSync(this.fd);
    this.entries.set(entry.packageId, entry);
    this.last = Math.max(this.last, entry.sequence);
  }

  close(): void {
    closeSync(this.fd);
  }
}
