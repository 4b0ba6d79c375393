import type { Receipt } from '@keyhub/protocol';
import type { ReceiptEffect } from '../domain/apply-receipt';

type Pending = { receipt: Receipt; resolve: (e: ReceiptEffect) => void; reject: (err: Error) => void };

/**
 * Group commit for receipts: those arriving within a few milliseconds of
 * each other are applied in one transaction. Each caller still gets its own
 * outcome, and acks its own message only after the commit.
 */
export class ReceiptBatcher {
  private pending: Pending[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly apply: (receipts: Receipt[]) => Promise<Array<ReceiptEffect | Error>>,
    private readonly maxBatch = 64,
    private readonly maxDelayMs = 5,
  ) {}

  submit(receipt: Receipt): Promise<ReceiptEffect> {
    return new Promise((resolve, reject) => {
      this.pending.push({ receipt, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
    });
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    this.apply(batch.map((p) => p.receipt)).then(
      (results) => batch.forEach((p, i) => {
        const r = results[i];
        if (r instanceof Error) p.reject(r);
        else p.resolve(r);
      }),
      (err: unknown) => batch.forEach((p) => p.reject(err instanceof Error ? err : new Error(String(err)))),
    );
  }
}
