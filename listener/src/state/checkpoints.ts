import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointDigest, WITNESS_EXPORT_VERSION, witnessCheckpointLine, type StoredCheckpoint, type WitnessCheckpointLine } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';

/** Checkpoints kept after a compaction; the file holds at most twice as many between compactions. */
export const DEFAULT_WITNESS_MAX = 2000;

export function witnessLineToCheckpoint(line: WitnessCheckpointLine): StoredCheckpoint {
  const p = line.payload;
  return { seq: p.seq, hash: p.hash, signature: line.signature, at: p.at, prevSeq: p.prevSeq, prevDigest: p.prevDigest };
}

/**
 * This site's copy of the hub's signed audit checkpoints: the witness that
 * lets an auditor catch a hub whose history was rewritten or cut back past
 * a checkpoint the site holds. Every newer checkpoint covers all events
 * before it (their hashes chain into its head), so the newest checkpoints
 * are the ones worth keeping.
 * - `checkpoints.jsonl` in the listener home, mode 0600, one verified
 *   checkpoint per line, appended and fsynced before the message is acked;
 * - bounded: past 2 × `max` lines it is rewritten with the newest `max`
 *   (temporary file, fsync, rename), so it never grows without end;
 * - a torn last line (crash during an append) is skipped when read.
 * Only the handler, after checking the hub signature under the pinned key,
 * adds to it.
 */
export class CheckpointStore {
  private readonly lines: WitnessCheckpointLine[] = [];
  private readonly digests = new Set<string>();
  /** Lines in the file that did not parse (a torn append), reported by `status`. */
  readonly skipped: number = 0;
  /** The file ends inside a line (a torn append): the next append starts a line of its own, or it would be glued to the torn one and lost (found by test/src/fuzz). */
  private torn = false;

  private constructor(
    private readonly home: string,
    private readonly max: number,
  ) {
    if (!existsSync(this.path)) return;
    let skipped = 0;
    const content = readFileSync(this.path, 'utf8');
    this.torn = content.length > 0 && !content.endsWith('\n');
    for (const text of content.split('\n')) {
      if (text.trim() === '') continue;
      let parsed;
      try {
        parsed = witnessCheckpointLine.safeParse(JSON.parse(text));
      } catch {
        parsed = undefined;
      }
      if (!parsed?.success) {
        skipped++;
        continue;
      }
      this.remember(parsed.data);
    }
    this.skipped = skipped;
  }

  static open(home: string, max = DEFAULT_WITNESS_MAX): CheckpointStore {
    return new CheckpointStore(home, max);
  }

  get path(): string {
    return join(this.home, 'checkpoints.jsonl');
  }

  get size(): number {
    return this.lines.length;
  }

  /** Oldest first, as received. */
  entries(): readonly WitnessCheckpointLine[] {
    return this.lines;
  }

  /** The stored checkpoint for an event, if any (the first one received for it). */
  atSeq(seq: number): WitnessCheckpointLine | undefined {
    return this.lines.find((l) => l.payload.seq === seq);
  }

  /** Highest event covered by a checkpoint held here (0 for none). */
  get lastSeq(): number {
    return this.lines.reduce((m, l) => Math.max(m, l.payload.seq), 0);
  }

  has(line: WitnessCheckpointLine): boolean {
    return this.digests.has(checkpointDigest(witnessLineToCheckpoint(line)));
  }

  /** Appends a verified checkpoint (fsynced); a copy already held is `present`. */
  add(line: WitnessCheckpointLine): 'stored' | 'present' {
    if (this.has(line)) return 'present';
    const fd = openSync(this.path, 'a', 0o600);
    try {
      writeSync(fd, `${this.torn ? '\n' : ''}${JSON.stringify(line)}\n`);
      fsyncSync(fd);
      this.torn = false;
    } finally {
      closeSync(fd);
    }
    this.remember(line);
    if (this.lines.length > 2 * this.max) this.compact();
    return 'stored';
  }

  private remember(line: WitnessCheckpointLine): void {
    this.lines.push(line);
    this.digests.add(checkpointDigest(witnessLineToCheckpoint(line)));
  }

  /** Keeps the newest `max` checkpoints (by event), written to a new file that replaces the old one atomically. */
  private compact(): void {
    const keep = [...this.lines].sort((a, b) => a.payload.seq - b.payload.seq).slice(-this.max);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, keep.map((l) => `${JSON.stringify(l)}\n`).join(''), { mode: 0o600 });
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.lines.length = 0;
    this.digests.clear();
    for (const l of keep) this.remember(l);
  }
}

export interface WitnessExportSummary {
  file: string;
  listenerId: string;
  hubFingerprint: string;
  checkpoints: number;
  lastSeq: number;
}

/**
 * Writes the site's copy for `keyhub audit verify --witness`: a header with
 * the listener id, the pinned hub fingerprint and the hub key accepted
 * under it, then every checkpoint held, oldest event first. Refused before
 * the hub key is pinned (nothing could have been verified yet).
 */
export function exportWitness(store: CheckpointStore, site: { listenerId: string; hubFingerprint: string; hubKey: Buffer | undefined }, out: string): WitnessExportSummary {
  if (!site.hubKey) throw new KeyhubError('NOT_ENROLLED', 'no pinned hub key yet: this site has not verified any checkpoint');
  const lines = [...store.entries()].sort((a, b) => a.payload.seq - b.payload.seq);
  const header = {
    type: 'witness',
    version: WITNESS_EXPORT_VERSION,
    listenerId: site.listenerId,
    hubFingerprint: site.hubFingerprint,
    hubSigningKey: site.hubKey.toString('base64'),
    exportedAt: new Date().toISOString(),
  };
  try {
    writeFileSync(out, [header, ...lines].map((l) => `${JSON.stringify(l)}\n`).join(''), { mode: 0o644, flag: 'wx' });
  } catch (err) {
    throw new KeyhubError('INPUT_INVALID', `cannot create ${out} (it must not exist yet)`, { cause: err });
  }
  return { file: out, listenerId: site.listenerId, hubFingerprint: site.hubFingerprint, checkpoints: lines.length, lastSeq: store.lastSeq };
}
