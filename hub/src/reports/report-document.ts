/**
 * A report as the renderers see it: what it is about (title, facts such as
 * the period, the generation time and the hub fingerprint) and its tables,
 * whose rows arrive a page at a time. Cells are already text, so CSV and
 * PDF print exactly the same values.
 */
export interface ReportColumn {
  /** The CSV header (snake_case) and, unless `label` is given, the PDF column title. */
  header: string;
  label?: string;
  /** The share of the page width the PDF gives the column. */
  width: number;
  /** false: CSV only (too wide or too technical for the printed table). */
  print?: boolean;
}

export interface ReportTable {
  heading: string;
  columns: ReportColumn[];
  rows: AsyncIterable<string[]> | Iterable<string[]>;
  /** Printed under the heading in the PDF (e.g. what was left out of the printed table). */
  note?: string;
}

export interface ReportDocument {
  /** Used in the file name the hub suggests and in the PDF title. */
  name: string;
  title: string;
  facts: Array<[label: string, value: string]>;
  /** The first table is the CSV; the PDF prints them all. */
  tables: ReportTable[];
}

/** Timestamps in reports: ISO 8601 UTC, empty when absent. */
export function isoCell(d: Date | string | null | undefined): string {
  return d === null || d === undefined ? '' : new Date(d).toISOString();
}

export function textCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}
