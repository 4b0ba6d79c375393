import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import type { Command } from 'commander';
import type { z } from 'zod';
import { api } from '@keyhub/protocol';
import type { HubClient } from '../client';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printJson, printLine } from '../output';

/*
 * `keyhub report key <name> | site <id> | ledger --from --to`: the hub's
 * compliance reports. JSON is fetched page by page and written as one
 * document (rows streamed out as they come); CSV and PDF are rendered by the
 * hub and streamed to --out (or stdout for CSV).
 */

interface ReportOptions {
  format: string;
  out?: string;
}

function formatOf(value: string): api.ReportFormat {
  const r = api.reportFormat.safeParse(value);
  if (!r.success) throw new CliError('INPUT_INVALID', `--format must be one of ${api.REPORT_FORMATS.join(', ')}`);
  return r.data;
}

function isoTime(value: string, flag: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new CliError('INPUT_INVALID', `${flag} "${value}" is not a date or time (ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00:00Z)`);
  return new Date(t).toISOString();
}

function sinkOf(out: string | undefined, format: api.ReportFormat): NodeJS.WritableStream {
  if (out !== undefined) return createWriteStream(out, { flags: 'wx' });
  if (format === 'pdf' && process.stdout.isTTY) throw new CliError('INPUT_INVALID', 'a PDF is not for the terminal: give --out <file> (or redirect stdout)');
  return process.stdout;
}

async function finish(sink: NodeJS.WritableStream, out: string | undefined, format: api.ReportFormat, json: boolean): Promise<void> {
  if (out === undefined) return;
  const file = sink as NodeJS.WritableStream & { writableEnded: boolean; writableFinished: boolean };
  if (!file.writableEnded) file.end();
  if (!file.writableFinished) await once(file, 'finish');
  const bytes = (await stat(out)).size;
  if (json) printJson({ written: out, format, bytes });
  else printLine(`wrote ${out} (${format}, ${bytes} bytes)`);
}

/** Every page of a JSON report, written as one document: the first page's header, then all rows, `next` null. */
async function writeJson<T extends z.ZodType<{ next: string | null; rows: unknown[] }>>(
  c: HubClient,
  path: (after: string | undefined) => string,
  schema: T,
  sink: NodeJS.WritableStream,
): Promise<void> {
  let after: string | undefined;
  let first = true;
  const write = (text: string): Promise<void> => new Promise((resolve, reject) => sink.write(text, (err) => (err ? reject(err) : resolve())));
  do {
    const page = await c.get(path(after), schema);
    if (first) {
      const head = JSON.stringify({ ...page, next: null, rows: [] });
      await write(head.slice(0, -2));
    }
    for (const row of page.rows) {
      await write(`${first ? '' : ','}${JSON.stringify(row)}`);
      first = false;
    }
    if (first && page.rows.length === 0) first = false;
    after = page.next ?? undefined;
  } while (after !== undefined);
  await write(']}\n');
}

async function run(cmd: Command, opts: ReportOptions, base: string, schema: z.ZodType<{ next: string | null; rows: unknown[] }>, query: Record<string, string> = {}): Promise<void> {
  const g = globals(cmd);
  const format = formatOf(opts.format);
  const c = await client();
  const sink = sinkOf(opts.out, format);
  const url = (extra: Record<string, string>) => `${base}?${new URLSearchParams({ ...query, format, ...extra }).toString()}`;
  try {
    if (format === 'json') await writeJson(c, (after) => url({ limit: String(api.REPORT_LIMITS.maxPageRows), ...(after !== undefined ? { after } : {}) }), schema, sink);
    else await c.download(url({}), sink);
  } catch (err) {
    // No half-written report is left behind to be mistaken for a whole one.
    if (opts.out !== undefined) await rm(opts.out, { force: true });
    throw err;
  }
  await finish(sink, opts.out, format, g.json);
}

function common(cmd: Command): Command {
  return cmd.option('--format <format>', 'json | csv | pdf', 'json').option('--out <file>', 'write to this file (must not exist); default stdout (not for PDF on a terminal)');
}

export function registerReportCommands(program: Command): void {
  const report = program.command('report').description('compliance reports: per key, per site, a ledger extract (JSON, CSV, PDF)');
  common(
    report.command('key').description('every version of a key at every site and target: state, pushed, confirmed, KCV confirmed, requested and approved by').argument('<name>', 'key name'),
  ).action(async (name: string, opts: ReportOptions, cmd: Command) => run(cmd, opts, `/v1/reports/keys/${encodeURIComponent(name)}`, api.keyReport));
  common(report.command('site').description('what a site holds, when it last reported, its drift').argument('<id>', 'listener id')).action(async (id: string, opts: ReportOptions, cmd: Command) =>
    run(cmd, opts, `/v1/reports/sites/${encodeURIComponent(id)}`, api.siteReport),
  );
  common(
    report
      .command('ledger')
      .description('the audit events of a period with their hashes and the signed checkpoints that cover them')
      .requiredOption('--from <time>', 'start of the period (ISO 8601, inclusive)')
      .requiredOption('--to <time>', 'end of the period (ISO 8601, inclusive)'),
  ).action(async (opts: ReportOptions & { from: string; to: string }, cmd: Command) =>
    run(cmd, opts, '/v1/reports/ledger', api.ledgerReport, { from: isoTime(opts.from, '--from'), to: isoTime(opts.to, '--to') }),
  );
}
