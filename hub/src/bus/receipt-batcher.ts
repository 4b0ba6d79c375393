import type { Receipt } from '@keyhub/protocol';
import type { ReceiptEffect } from '../domain/receipt-effects';

type Pending = { receipt: Receipt; resolve: (e: ReceiptEffect) => void; reject: (err: Error) => void };

/**
 * Group commit for receipts: those arriving within a few milliseconds of
 * each other are applied in one transaction, and only one such transaction
 * runs at a time; receipts that arrive meanwhile form the next batch. Every
 * receipt transaction holds the audit chain's lock until its commit is on
 * disk, so concurrent small batches only queue on that lock (and on the disk
 * behind it) and hold up every other writer; one batch at a time does the
 * same work with a fraction of the commits. Each caller still gets its own
 * outcome, and acks its own message only after the commit.
 */
export class ReceiptBatcher {
  private pending: Pending[] = [];
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly apply: (receipts: Receipt[]) => Promise<Array<ReceiptEffect | Error>>,
    private readonly maxBatch = 256,
    private readonly maxDelayMs = 5,
  ) {}

  submit(receipt: Receipt): Promise<ReceiptEffect> {
    return new Promise((resolve, reject) => {
      this.pending.push({ receipt, resolve, reject });
      if (this.running) return;
      if (this.pending.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
    });
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.maxBatch);
    this.running = true;
    this.apply(batch.map((p) => p.receipt))
      .then(
        (results) =>
          batch.forEach((p, i) => {
            const r = results[i];
            if (r instanceof Error) p.reject(r);
            else p.resolve(r);
          }),
        (err: unknown) => batch.forEach((p) => p.reject(err instanceof Error ? err : new Error(String(err)))),
      )
      .finally(() => {
        this.running = false;
        // What arrived during this batch goes at once: it has already waited.
        if (this.pending.length) this.flush();
      });
  }
}
