import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { text } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { z } from 'zod';
import { KeyhubError } from '@keyhub/shared';
import { csvStream, neutralizeFormula } from '@keyhub/hub/dist/reports/csv';
import { pdfStream } from '@keyhub/hub/dist/reports/pdf';
import { allPages, decodeCursor, encodeCursor } from '@keyhub/hub/dist/operations/reports/report-cursor';
import { parseCsv } from '../integration/reports-expected';

/** The report renderers and page cursors on their own: no database, no server. */
describe('report rendering: CSV, PDF, page cursors', function () {
  this.timeout(30_000);

  it('CSV: a header row, then the cells as given; commas, quotes and line breaks survive a round trip; formulas are neutralized', async () => {
    const rows = [
      ['1', 'a,b', 'say "hi"'],
      ['2', 'line\nbreak', '=HYPERLINK("x")'],
      ['3', '-1+2', '@SUM(A1)'],
    ];
    const csv = await text(csvStream({ heading: 't', columns: ['n', 'x', 'y'].map((header) => ({ header, width: 1 })), rows }));
    assert.deepEqual(parseCsv(csv), [
      ['n', 'x', 'y'],
      ['1', 'a,b', 'say "hi"'],
      ['2', 'line\nbreak', `'=HYPERLINK("x")`],
      ['3', "'-1+2", "'@SUM(A1)"],
    ]);
    assert.equal(neutralizeFormula('2026-01-01T00:00:00.000Z'), '2026-01-01T00:00:00.000Z');
  });

  it('PDF: a long table spans pages, each numbered "Page i of n", column titles repeated, every row present (pdftotext)', async () => {
    const rows = Array.from({ length: 120 }, (_, i) => [`row-${String(i + 1).padStart(3, '0')}`, 'abc123', '2026-11-26T10:00:00.000Z']);
    const doc = pdfStream({
      name: 't',
      title: 'Unit report',
      facts: [
        ['Generated', '2026-11-26T10:00:00.000Z'],
        ['Hub fingerprint', 'SHA256:test'],
      ],
      tables: [
        {
          heading: 'Rows',
          columns: [
            { header: 'name', width: 2 },
            { header: 'kcv', width: 1 },
            { header: 'at', width: 2 },
          ],
          rows,
        },
      ],
    });
    const chunks: Buffer[] = [];
    for await (const c of doc) chunks.push(c as Buffer);
    const dir = await mkdtemp(path.join(tmpdir(), 'report-pdf-'));
    try {
      const file = path.join(dir, 't.pdf');
      await writeFile(file, Buffer.concat(chunks));
      const out = (await promisify(execFile)('pdftotext', ['-layout', file, '-'])).stdout;
      const pages = out.split('\f').filter((p) => p.trim());
      assert.ok(pages.length >= 3, `${pages.length} pages`);
      pages.forEach((p, i) => {
        assert.match(p, new RegExp(`Page ${i + 1} of ${pages.length}`));
        assert.match(p, /name\s+kcv\s+at/, `column titles on page ${i + 1}`);
      });
      for (const r of rows) assert.match(out, new RegExp(`${r[0]}\\s+abc123\\s+2026-11-26 10:00:00Z`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('cursors: what a page hands out comes back; anything else is REPORT_CURSOR_INVALID', () => {
    const schema = z.tuple([z.number().int(), z.string(), z.string()]);
    assert.deepEqual(decodeCursor(encodeCursor([3, 'site-1', 'hsm']), schema), [3, 'site-1', 'hsm']);
    assert.equal(decodeCursor(undefined, schema), undefined);
    for (const bad of ['bm90LWpzb24', encodeCursor(['3', 'site-1', 'hsm']), encodeCursor([3, 'site-1'])]) {
      assert.throws(
        () => decodeCursor(bad, schema),
        (e: unknown) => e instanceof KeyhubError && e.code === 'REPORT_CURSOR_INVALID',
      );
    }
  });

  it('allPages reads page after page from the last position until a short page', async () => {
    const data = Array.from({ length: 7 }, (_, i) => i + 1);
    const asked: Array<number | undefined> = [];
    const read = async (after: number | undefined) => {
      asked.push(after);
      return data.filter((x) => x > (after ?? 0)).slice(0, 3);
    };
    const got: number[] = [];
    for await (const x of allPages(read, (x) => x, 3)) got.push(x);
    assert.deepEqual(got, data);
    assert.deepEqual(asked, [undefined, 3, 6]);
  });
});
