import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface Tombstone {
  keyId: string;
  version: number;
  /** What the site was told: compromise or destroy. */
  action: 'compromise' | 'destroy';
  commandId: string;
  at: string;
  /**
   * Set for a destroy at one target that leaves the version alive elsewhere
   * (the site left a distribution policy: reason 'policy'): only packages of
   * the version for this target issued up to `before` (the command's
   * issuedAt, so those queued before it) are refused; a later package (the
   * site matches the policy again) imports. Absent: the whole version.
   */
  target?: string;
  before?: string;
}

/**
 * Every key version this site was told is compromised or destroyed. The
 * inbox refuses any package of such a version (KEY_VERSION_REVOKED), also
 * one queued before the command and arriving after it. A destroy at one
 * target of a version that lives on (the site left a distribution policy)
 * refuses only that target's packages issued before it: the site may match
 * the policy again and must then import the version again. Append-only JSON
 * lines, each written and synced to disk before the command is carried out
 * in the target and before its receipt: a crash can repeat the command,
 * never forget the tombstone. Never compacted: there are few, and forgetting
 * one would let a compromised key back in.
 */
export class Tombstones {
  private readonly byVersion = new Map<string, Tombstone>();
  private readonly byTarget = new Map<string, Tombstone>();
  private readonly fd: number;

  private constructor(path: string) {
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          const t = JSON.parse(line) as unknown;
          if (isTombstone(t)) this.remember(t);
        } catch {
          // A torn last line from a crash mid-write: that command was not acked and will come again.
        }
      }
    }
    this.fd = openSync(path, 'a', 0o600);
  }

  static open(home: string): Tombstones {
    return new Tombstones(join(home, 'tombstones.jsonl'));
  }

  get(keyId: string, version: number): Tombstone | undefined {
    return this.byVersion.get(`${keyId}/${version}`);
  }

  /** Refused: the whole version, or (given the package's target and issuedAt) a package queued before a destroy at that target. */
  has(keyId: string, version: number, target?: string, issuedAt?: string): boolean {
    if (this.byVersion.has(`${keyId}/${version}`)) return true;
    if (target === undefined || issuedAt === undefined) return false;
    const scoped = this.byTarget.get(`${keyId}/${version}/${target}`);
    return scoped?.before !== undefined && Date.parse(issuedAt) <= Date.parse(scoped.before);
  }

  get size(): number {
    return this.byVersion.size;
  }

  /** Durable when it returns. A destroy after a compromise replaces it (the stronger statement wins). */
  add(t: Tombstone): void {
    const known = this.get(t.keyId, t.version);
    if (known && (known.action === 'destroy' || known.action === t.action)) return;
    if (t.target !== undefined) {
      const scoped = this.byTarget.get(`${t.keyId}/${t.version}/${t.target}`);
      if (known || (scoped?.before !== undefined && t.before !== undefined && Date.parse(scoped.before) >= Date.parse(t.before))) return;
    }
    writeSync(this.fd, JSON.stringify(t) + '\n');
    fdatasyncSync(this.fd);
    this.remember(t);
  }

  close(): void {
    closeSync(this.fd);
  }

  private remember(t: Tombstone): void {
    if (t.target !== undefined) {
      const k = `${t.keyId}/${t.version}/${t.target}`;
      const before = this.byTarget.get(k);
      if (t.before !== undefined && (before?.before === undefined || Date.parse(before.before) < Date.parse(t.before))) this.byTarget.set(k, t);
      return;
    }
    const known = this.get(t.keyId, t.version);
    if (known?.action === 'destroy') return;
    this.byVersion.set(`${t.keyId}/${t.version}`, t);
  }
}

function isTombstone(v: unknown): v is Tombstone {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as Record<string, unknown>;
  const scoped = (t.target === undefined && t.before === undefined) || (typeof t.target === 'string' && typeof t.before === 'string');
  return (
    typeof t.keyId === 'string' && Number.isSafeInteger(t.version) && (t.action === 'compromise' || t.action === 'destroy') && typeof t.commandId === 'string' && typeof t.at === 'string' && scoped
  );
}
