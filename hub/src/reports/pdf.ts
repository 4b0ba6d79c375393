import PDFDocument from 'pdfkit';
import type { ReportDocument, ReportTable } from './report-document';

/*
 * A plain, printable report: A4 landscape (the tables are wide), the
 * standard Helvetica font (nothing embedded, nothing fetched), the title
 * and facts (period, generation time, hub fingerprint) on the first page,
 * a running header and "page i of n" on every page, each table's column
 * titles repeated at the top of every page it spans. Cells too long for
 * their column end in an ellipsis; the CSV and JSON carry them whole.
 */

const MARGIN = 36;
const FONT_SIZE = 7;
const ROW_HEIGHT = 10;
const FOOTER_GAP = 14;

type Doc = InstanceType<typeof PDFDocument>;

interface Layout {
  x: number;
  width: number;
  bottom: number;
}

function runningHeader(doc: Doc, report: ReportDocument, layout: Layout): void {
  const generated = report.facts.find(([label]) => label === 'Generated')?.[1] ?? '';
  doc.font('Helvetica').fontSize(6).fillColor('#555555');
  doc.text(`${report.title} | generated ${generated}`, layout.x, MARGIN - 20, { width: layout.width, lineBreak: false, ellipsis: true });
  doc.fillColor('black');
}

/** The columns the PDF prints (some are CSV only), by index. */
function printed(table: ReportTable): number[] {
  return table.columns.flatMap((c, i) => (c.print === false ? [] : [i]));
}

/** Seconds are enough on paper; the CSV and JSON keep the milliseconds. */
function shortTime(cell: string): string {
  return cell.replace(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)\.\d{3}Z$/, '$1 $2Z');
}

function columnXs(table: ReportTable, layout: Layout): number[] {
  const shown = printed(table).map((i) => table.columns[i]);
  const total = shown.reduce((n, c) => n + c.width, 0);
  const xs: number[] = [];
  let x = layout.x;
  for (const c of shown) {
    xs.push(x);
    x += (c.width / total) * layout.width;
  }
  xs.push(layout.x + layout.width);
  return xs;
}

function cells(doc: Doc, values: string[], xs: number[], y: number, bold: boolean): void {
  doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(FONT_SIZE);
  values.forEach((v, i) => {
    doc.text(v, xs[i] + 1, y, { width: xs[i + 1] - xs[i] - 3, height: ROW_HEIGHT, lineBreak: false, ellipsis: true });
  });
}

function tableHeader(doc: Doc, table: ReportTable, xs: number[], y: number, layout: Layout): number {
  cells(
    doc,
    printed(table).map((i) => table.columns[i].label ?? table.columns[i].header),
    xs,
    y,
    true,
  );
  doc
    .moveTo(layout.x, y + ROW_HEIGHT - 1)
    .lineTo(layout.x + layout.width, y + ROW_HEIGHT - 1)
    .lineWidth(0.5)
    .stroke();
  return y + ROW_HEIGHT + 1;
}

function newPage(doc: Doc, report: ReportDocument, layout: Layout): number {
  doc.addPage();
  runningHeader(doc, report, layout);
  return MARGIN;
}

async function writeTable(doc: Doc, report: ReportDocument, table: ReportTable, y: number, layout: Layout): Promise<number> {
  if (y + 4 * ROW_HEIGHT > layout.bottom) y = newPage(doc, report, layout);
  doc.font('Helvetica-Bold').fontSize(10).text(table.heading, layout.x, y, { width: layout.width });
  y = doc.y + 2;
  if (table.note) {
    doc.font('Helvetica').fontSize(7).text(table.note, layout.x, y, { width: layout.width });
    y = doc.y + 2;
  }
  const xs = columnXs(table, layout);
  const shown = printed(table);
  y = tableHeader(doc, table, xs, y, layout);
  let rows = 0;
  for await (const row of table.rows) {
    if (y + ROW_HEIGHT > layout.bottom) y = tableHeader(doc, table, xs, newPage(doc, report, layout), layout);
    cells(
      doc,
      shown.map((i) => shortTime(row[i] ?? '')),
      xs,
      y,
      false,
    );
    y += ROW_HEIGHT;
    rows++;
  }
  if (rows === 0) {
    doc.font('Helvetica-Oblique').fontSize(FONT_SIZE).text('(none)', layout.x, y, { width: layout.width });
    y += ROW_HEIGHT;
  }
  return y + ROW_HEIGHT;
}

function pageNumbers(doc: Doc, layout: Layout): void {
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    // Writing below the bottom margin would make pdfkit start a new page: lift the margin for the footer.
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font('Helvetica')
      .fontSize(7)
      .text(`Page ${i + 1 - range.start} of ${range.count}`, layout.x, doc.page.height - MARGIN + 6, { width: layout.width, align: 'right', lineBreak: false });
    doc.page.margins.bottom = bottom;
  }
}

async function fill(doc: Doc, report: ReportDocument): Promise<void> {
  const layout: Layout = { x: MARGIN, width: doc.page.width - 2 * MARGIN, bottom: doc.page.height - MARGIN - FOOTER_GAP };
  runningHeader(doc, report, layout);
  doc.font('Helvetica-Bold').fontSize(14).text(report.title, layout.x, MARGIN, { width: layout.width });
  doc.moveDown(0.3);
  for (const [label, value] of report.facts) {
    doc.font('Helvetica-Bold').fontSize(8).text(`${label}: `, { continued: true }).font('Helvetica').text(value);
  }
  let y = doc.y + ROW_HEIGHT;
  for (const table of report.tables) y = await writeTable(doc, report, table, y, layout);
  pageNumbers(doc, layout);
}

/** The report as a PDF stream; the rows are read while it is written, and a failure mid-way destroys the stream. */
export function pdfStream(report: ReportDocument): Doc {
  const doc = new PDFDocument({ size: 'A4', layout: 'landscape', margin: MARGIN, bufferPages: true, info: { Title: report.title, Creator: 'Keyhub', Producer: 'Keyhub (pdfkit)' } });
  fill(doc, report).then(
    () => doc.end(),
    (err: unknown) => doc.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  return doc;
}
