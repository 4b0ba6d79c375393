import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@keyhub/shared';

/** What the listener knows about one object it imported: the KCV it verified then, and the usages the policy granted. */
export interface IndexEntry {
  target: string;
  /** CKA_ID in hex (pkcs11-target.ts objectId). */
  objectId: string;
  kcv: string;
  usages: string[];
}

const FILE = 'inventory-index.json';

/** An entry's place in the index: one key version delivered to two targets of one listener (a token and a keystore) has an entry for each. */
export const indexKey = (target: string, objectId: string): string => `${target}\u0000${objectId}`;
/** Writes are grouped: a catch-up of thousands of imports rewrites the file once a second, not once per key. */
const FLUSH_MS = 1_000;

/**
 * The listener's local record of what it imported, kept in its home. A
 * PKCS#11 object cannot always show its KCV (an AES key without CKA_SIGN has
 * no CMAC; a key without CKA_ENCRYPT no ECB block), so the inventory joins
 * this record with what the token actually holds: the KCV verified at
 * import time is reported for an object still in the token under that
 * CKA_ID (unless the token can recompute it, which wins); objects gone from
 * the token are simply absent from the inventory; objects nobody recorded
 * here are reported without a KCV. Losing the last second of entries in a
 * crash only costs KCVs in the next report (never a false mismatch).
 */
export class InventoryIndex {
  private readonly entries = new Map<string, IndexEntry>();
  private dirty = false;
  private timer?: NodeJS.Timeout;

  private constructor(
    private readonly path: string,
    private readonly logger?: Logger,
  ) {}

  static open(home: string, logger?: Logger): InventoryIndex {
    const index = new InventoryIndex(join(home, FILE), logger);
    if (existsSync(index.path)) {
      try {
        const raw: unknown = JSON.parse(readFileSync(index.path, 'utf8'));
        for (const e of Array.isArray(raw) ? raw : []) if (isEntry(e)) index.entries.set(indexKey(e.target, e.objectId), e);
      } catch {
        // A damaged file is not trusted: the next report carries no KCVs from it (never wrong ones).
        logger?.warn({ file: index.path }, 'inventory index unreadable; starting empty');
      }
    }
    return index;
  }

  get(target: string, objectId: string): IndexEntry | undefined {
    return this.entries.get(indexKey(target, objectId));
  }

  /** The entry of an object found in a token shared by `targets` (the listener's own token): whichever of them imported it. */
  find(objectId: string, targets: readonly string[]): IndexEntry | undefined {
    for (const t of targets) {
      const e = this.entries.get(indexKey(t, objectId));
      if (e) return e;
    }
    return undefined;
  }

  record(entry: IndexEntry): void {
    this.entries.set(indexKey(entry.target, entry.objectId), entry);
    this.touch();
  }

  remove(target: string, objectId: string): void {
    if (this.entries.delete(indexKey(target, objectId))) this.touch();
  }

  /**
   * Drops the entries of `read` targets (read in full in this scan) whose
   * objects are no longer there; `present` holds indexKey()s. Entries of
   * other targets (a token that could not be opened, a cloud that did not
   * answer, a target not part of the scan) are kept: nobody looked.
   */
  retainOnly(present: ReadonlySet<string>, read: ReadonlySet<string>): void {
    for (const [k, e] of [...this.entries]) {
      if (read.has(e.target) && !present.has(k)) {
        this.entries.delete(k);
        this.touch();
      }
    }
  }

  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.entries.values()]), { mode: 0o600 });
    renameSync(tmp, this.path);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private touch(): void {
    this.dirty = true;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      try {
        this.flush();
      } catch (err) {
        this.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'inventory index not saved; will retry');
        this.dirty = true;
      }
    }, FLUSH_MS);
    this.timer.unref();
  }
}

function isEntry(e: unknown): e is IndexEntry {
  if (typeof e !== 'object' || e === null) return false;
  const x = e as Record<string, unknown>;
  return typeof x.target === 'string' && typeof x.objectId === 'string' && typeof x.kcv === 'string' && /^[0-9a-f]{6}$/.test(x.kcv) && Array.isArray(x.usages);
}
