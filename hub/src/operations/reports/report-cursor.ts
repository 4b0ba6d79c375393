import { z } from 'zod';
import { KeyhubError } from '@keyhub/shared';

/**
 * Page cursors: the last row's position in the report's order, as
 * base64url JSON. Opaque to clients; checked against the report's own
 * schema when it comes back, so a forged one is refused, not run.
 */
export function encodeCursor(position: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');
}

export function decodeCursor<T extends z.ZodType>(cursor: string | undefined, schema: T): z.infer<T> | undefined {
  if (cursor === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new KeyhubError('REPORT_CURSOR_INVALID', 'the page cursor is not one this report handed out');
  }
  const r = schema.safeParse(parsed);
  if (!r.success) throw new KeyhubError('REPORT_CURSOR_INVALID', 'the page cursor is not one this report handed out');
  return r.data;
}

/** Every row of a report, read a bounded page at a time (never the whole report in memory). */
export async function* allPages<P, R>(read: (after: P | undefined) => Promise<R[]>, positionOf: (row: R) => P, pageSize: number): AsyncGenerator<R> {
  let after: P | undefined;
  for (;;) {
    const rows = await read(after);
    yield* rows;
    if (rows.length < pageSize) return;
    after = positionOf(rows[rows.length - 1]);
  }
}

/** Refuses a CSV or PDF that would exceed its format's row limit before anything is streamed. */
export function checkRowLimit(format: 'csv' | 'pdf', rows: number, limits: { maxCsvRows: number; maxPdfRows: number }): void {
  const max = format === 'csv' ? limits.maxCsvRows : limits.maxPdfRows;
  if (rows > max) throw new KeyhubError('REPORT_TOO_LARGE', `the report has ${rows} rows; a ${format.toUpperCase()} holds at most ${max} (page through the JSON, use CSV, or narrow it)`);
}
