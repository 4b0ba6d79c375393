/** What the admin entry point prints: results on stdout, one JSON document per line with --json. */
export type Cell = string | number | boolean | null | undefined;

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function printError(text: string): void {
  process.stderr.write(`${text}\n`);
}

export function printFields(fields: ReadonlyArray<readonly [string, Cell]>): void {
  const width = Math.max(...fields.map(([label]) => label.length));
  for (const [label, value] of fields) printLine(`${`${label}:`.padEnd(width + 1)} ${value === null || value === undefined || value === '' ? '-' : String(value)}`);
}

export function flushStdio(): Promise<void> {
  const drain = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', () => resolve())));
  return Promise.all([drain(process.stdout), drain(process.stderr)]).then(() => undefined);
}
