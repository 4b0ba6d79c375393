import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface CommandJournalEntry {
  commandId: string;
  /** SHA-256 (hex) of the command envelope the receipt answers. */
  sha256: string;
  keyId: string;
  version: number;
  target: string;
  action: string;
  /** The command's issuedAt: a command older than the last one carried out for the same version and target is superseded. */
  issuedAt: string;
  outcome: string;
  /** The signed receipt, base64 of the encoded envelope, sent again verbatim for a replayed command. */
  receipt: string;
}

/**
 * The commands this site carried out, by command id: a command is run once;
 * a copy (the hub's re-send, or a replay by whoever can publish) is
 * answered with the receipt it earned the first time and changes nothing.
 * It also keeps, per key version and target, the newest command carried
 * out, so that an older command arriving late (suspend after the resume
 * that followed it) does not undo a newer one. Synced per entry: commands
 * are few, and losing one would let a replay run it again.
 */
export class CommandJournal {
  private readonly entries = new Map<string, CommandJournalEntry>();
  private readonly newest = new Map<string, string>();
  private readonly fd: number;

  private constructor(path: string) {
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          const e = JSON.parse(line) as unknown;
          // Only the entry's own fields: extra ones (a nesting JSON.stringify cannot write back, journal.ts) would break the rewrite below.
          if (isEntry(e)) this.remember(ownFields(e));
        } catch {
          // A torn last line from a crash mid-write: that command was not acked and will come again.
        }
      }
    }
    const body = [...this.entries.values()].map((e) => JSON.stringify(e)).join('\n');
    writeFileSync(`${path}.tmp`, body ? body + '\n' : '', { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    this.fd = openSync(path, 'a', 0o600);
  }

  static open(home: string): CommandJournal {
    return new CommandJournal(join(home, 'commands.jsonl'));
  }

  get(commandId: string): CommandJournalEntry | undefined {
    return this.entries.get(commandId);
  }

  /** issuedAt of the newest command carried out for this version at this target. */
  newestFor(keyId: string, version: number, target: string): string | undefined {
    return this.newest.get(`${keyId}/${version}/${target}`);
  }

  record(e: CommandJournalEntry): void {
    writeSync(this.fd, JSON.stringify(e) + '\n');
    fdatasyncSync(this.fd);
    this.remember(e);
  }

  close(): void {
    closeSync(this.fd);
  }

  private remember(e: CommandJournalEntry): void {
    this.entries.set(e.commandId, e);
    if (e.outcome !== 'done' && e.outcome !== 'already_done') return;
    const k = `${e.keyId}/${e.version}/${e.target}`;
    const before = this.newest.get(k);
    if (!before || before < e.issuedAt) this.newest.set(k, e.issuedAt);
  }
}

function ownFields(e: CommandJournalEntry): CommandJournalEntry {
  const { commandId, sha256, keyId, version, target, action, issuedAt, outcome, receipt } = e;
  return { commandId, sha256, keyId, version, target, action, issuedAt, outcome, receipt };
}

function isEntry(v: unknown): v is CommandJournalEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.commandId === 'string' &&
    typeof e.sha256 === 'string' &&
    typeof e.keyId === 'string' &&
    Number.isSafeInteger(e.version) &&
    typeof e.target === 'string' &&
    typeof e.action === 'string' &&
    typeof e.issuedAt === 'string' &&
    typeof e.outcome === 'string' &&
    typeof e.receipt === 'string'
  );
}
