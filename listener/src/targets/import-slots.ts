import type { Target } from './target';

/** A counting semaphore: at most `limit` runs at once, the others wait in arrival order. */
class Slots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await work();
    } finally {
      // The slot passes straight to the next waiter (active stays as it is), or is freed.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * How many imports run at once, per target. A target that batches (a
 * keystore: one rewrite takes what is in flight) declares `importSlots` and
 * gets them for itself; every other target (PKCS#11 tokens, clouds) shares
 * the listener's `importConcurrency`, as before keystores had slots. The
 * consumer takes `consumerConcurrency()` messages at once, so a backlog for a
 * keystore fills its slots while PKCS#11 imports still run
 * `importConcurrency` at a time (a PKCS#11 package waiting for a shared slot
 * holds a consumer slot meanwhile, as it held its place in the stream
 * before).
 */
export class ImportGates {
  private readonly shared: Slots;
  private readonly own = new Map<string, Slots>();

  constructor(importConcurrency: number) {
    this.shared = new Slots(importConcurrency);
  }

  run<T>(target: Pick<Target, 'name' | 'importSlots'>, work: () => Promise<T>): Promise<T> {
    if (!target.importSlots) return this.shared.run(work);
    let slots = this.own.get(target.name);
    if (!slots) this.own.set(target.name, (slots = new Slots(target.importSlots)));
    return slots.run(work);
  }
}

/** Messages the listener's consumer takes at once: `importConcurrency`, plus each batching target's own slots. */
export function consumerConcurrency(importConcurrency: number, targets: Iterable<Pick<Target, 'importSlots'>>): number {
  let n = importConcurrency;
  for (const t of targets) n += t.importSlots ?? 0;
  return n;
}
