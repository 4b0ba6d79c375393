import { randomUUID } from 'node:crypto';
import { INVENTORY_MAX_ITEMS, MESSAGE_TYPES, type InventoryItemReport, type InventoryReport } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import type { ListenerBus } from '../bus/listener-bus';
import type { ListenerRuntime } from '../runtime';
import { collectTargetInventory, collectTokenInventory } from './collect';
import type { InventoryIndex } from './inventory-index';

/** Encoded items per part at most: with the envelope and signature the message stays well under the 64 KiB wire limit. */
const MAX_PART_CHARS = 40_000;

/**
 * Sends this site's signed inventory on start and every
 * `inventorySeconds`: one report (an id and the time the token was read)
 * cut into parts of at most INVENTORY_MAX_ITEMS items and ~40 KB, each part
 * signed with the listener's identity key. A run that is still sending when
 * the next is due is not doubled. The agent also asks for one right after a
 * root KEK is installed: a site just approved sent its start report while
 * its KEK confirmation was on the way, and the hub takes inventories from
 * active sites only.
 */
export class InventoryReporter {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly rt: ListenerRuntime,
    private readonly bus: ListenerBus,
    private readonly index: InventoryIndex,
  ) {}

  start(): void {
    void this.reportNow();
    this.timer = setInterval(() => void this.reportNow(), this.rt.config.inventorySeconds * 1000);
  }

  /** One report now (or the one under way). Failures are logged: the next interval tries again. */
  reportNow(): Promise<void> {
    this.running ??= this.report()
      .catch((err: unknown) => {
        const e = KeyhubError.from(err);
        this.rt.logger.warn({ code: e.code, detail: e.message }, 'inventory report not sent; the next interval tries again');
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async report(): Promise<void> {
    const pkcs11 = this.rt.config.targets.filter((t) => t.kind === 'pkcs11');
    const targets = pkcs11.map((t) => ({ name: t.name, labelPrefix: t.labelPrefix }));
    const takenAt = new Date();
    // The listener's own token for the targets in it; each target with a token of its own (issue 12) from that token, all its objects its own.
    const seen = new Set<string>();
    const ownToken = targets.filter((t) => !this.rt.targetTokens.has(t.name));
    const items = await collectTokenInventory(this.rt.hsm, ownToken, this.index, seen);
    const read = new Set(ownToken.map((t) => t.name));
    for (const [name, token] of this.rt.targetTokens) {
      if (token.config.kind !== 'pkcs11') {
        // Keystore, cloud, TR-31: what the target says it holds (its inventory(), checked against the file / cloud / payment HSM).
        const target = this.rt.targets.get(name);
        const own = target ? await collectTargetInventory(target, this.index, seen, this.rt.logger) : undefined;
        if (own) {
          items.push(...own);
          read.add(name);
        }
        continue;
      }
      // A target token that cannot be opened now is left out of this report, not reported empty (which would read as drift).
      if (token.available === false) continue;
      const own = await collectTokenInventory(token.keys.hsm, [{ name, labelPrefix: token.config.labelPrefix }], this.index, seen);
      items.push(...own.map((item) => ({ ...item, target: name })));
      read.add(name);
    }
    this.index.retainOnly(seen, read);
    const parts = cutIntoParts(items);
    const reportId = randomUUID();
    for (let i = 0; i < parts.length; i++) {
      const payload: InventoryReport = {
        type: MESSAGE_TYPES.inventory,
        id: randomUUID(),
        listenerId: this.rt.config.id,
        issuedAt: new Date().toISOString(),
        reportId,
        takenAt: takenAt.toISOString(),
        part: i + 1,
        of: parts.length,
        targets: this.rt.config.targets.map((t) => t.name).filter((n) => read.has(n)),
        items: parts[i],
      };
      await this.bus.publishUp('inventory', await this.rt.keys.sign(payload));
    }
    this.rt.logger.info({ reportId, items: items.length, parts: parts.length }, 'inventory sent');
  }
}

/** Parts of at most INVENTORY_MAX_ITEMS items and MAX_PART_CHARS encoded characters; an empty inventory is one empty part. */
export function cutIntoParts(items: InventoryItemReport[]): InventoryItemReport[][] {
  const parts: InventoryItemReport[][] = [[]];
  let chars = 0;
  for (const item of items) {
    const size = JSON.stringify(item).length + 1;
    const last = parts[parts.length - 1];
    if (last.length > 0 && (last.length >= INVENTORY_MAX_ITEMS || chars + size > MAX_PART_CHARS)) {
      parts.push([item]);
      chars = size;
    } else {
      last.push(item);
      chars += size;
    }
  }
  return parts;
}
