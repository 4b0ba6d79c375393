import { pipeline, Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import type { ReportTable } from './report-document';

/**
 * Cells a spreadsheet would run as a formula (=, +, -, @, tab, CR at the
 * start) get a leading apostrophe (OWASP "CSV injection"): report cells
 * carry operator-written text such as reasons, and auditors open CSVs in
 * spreadsheets. Nothing in a report legitimately starts with those.
 */
export function neutralizeFormula(cell: string): string {
  return /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell;
}

/** The table as RFC 4180 CSV with a header row, streamed row by row (csv-stringify), never held whole in memory. */
export function csvStream(table: ReportTable): Readable {
  // Any line break inside a cell is quoted, not only the CRLF records end with: readers split records on a bare LF too.
  const stringifier = stringify({ header: true, columns: table.columns.map((c) => c.header), record_delimiter: 'windows', quoted_match: /[\r\n]/ });
  const source = Readable.from(
    (async function* () {
      for await (const row of table.rows) yield row.map(neutralizeFormula);
    })(),
  );
  return pipeline(source, stringifier, () => {
    // Errors destroy the returned stream, which the HTTP layer reports by aborting the response.
  });
}
