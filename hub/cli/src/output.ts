/**
 * Everything the CLI prints goes through here: results on stdout (one JSON
 * document per line with --json, so scripts can read line by line), progress
 * and errors on stderr.
 */
import { Presets, SingleBar } from 'cli-progress';

export type Cell = string | number | boolean | null | undefined;

export interface Column<T> {
  header: string;
  value: (row: T) => Cell;
  /** Numbers read better right-aligned. */
  align?: 'left' | 'right';
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function printError(text: string): void {
  process.stderr.write(`${text}\n`);
}

function cellText(value: Cell): string {
  if (value === null || value === undefined || value === '') return '-';
  return terminalSafe(String(value));
}

export function printTable<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>, options: { empty?: string } = {}): void {
  if (rows.length === 0) {
    printLine(options.empty ?? '(none)');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => cellText(c.value(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i].length)));
  const format = (values: string[]) =>
    values
      .map((v, i) => (columns[i].align === 'right' ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  printLine(format(columns.map((c) => c.header.toUpperCase())));
  for (const row of cells) printLine(format(row));
}

/** "label: value" lines with the values aligned, for one record. */
export function printFields(fields: ReadonlyArray<readonly [string, Cell]>): void {
  const width = Math.max(...fields.map(([label]) => label.length));
  for (const [label, value] of fields) printLine(`${`${label}:`.padEnd(width + 1)} ${cellText(value)}`);
}

/**
 * A progress bar on stderr, only where a person watches: stderr is a terminal
 * and the output is not --json. Anywhere else it prints nothing, so pipes, CI
 * logs and scripts see exactly what they saw before. It appears on the first
 * update, so work that is already finished never flashes an empty bar.
 */
export class ProgressBar {
  private readonly enabled: boolean;
  private bar?: SingleBar;

  /** `format` uses cli-progress placeholders ({bar}, {value}, {total}, {duration_formatted}) and payload keys. */
  constructor(
    private readonly format: string,
    options: { json: boolean },
  ) {
    this.enabled = process.stderr.isTTY === true && !options.json;
  }

  update(value: number, total: number, payload: Record<string, string | number> = {}): void {
    if (!this.enabled || total <= 0) return;
    if (!this.bar) {
      this.bar = new SingleBar({ format: this.format, stream: process.stderr, hideCursor: true, barsize: 30, fps: 5 }, Presets.shades_classic);
      this.bar.start(total, value, payload);
      return;
    }
    this.bar.setTotal(total);
    this.bar.update(value, payload);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** Resolves once everything written so far has been handed to the OS, so process.exit cannot cut output short. */
export function flushStdio(): Promise<void> {
  const drain = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', () => resolve())));
  return Promise.all([drain(process.stdout), drain(process.stderr)]).then(() => undefined);
}

/**
 * Strings that come from elsewhere (listener hostnames, target names,
 * labels) may carry escape sequences that would rewrite the operator's
 * terminal; control characters are shown as \xNN instead.
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
