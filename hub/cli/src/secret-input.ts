import { CliError } from './errors';

/**
 * Reads a secret without echoing it: on a terminal, in raw mode with nothing
 * printed per key; otherwise (pipes, tests) one line from standard input.
 */
export async function readSecret(prompt: string, fromStdin: boolean): Promise<string> {
  const input = process.stdin;
  if (fromStdin || !input.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of input) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
    if (!text) throw new CliError('INPUT_INVALID', 'nothing on standard input');
    return text;
  }
  // Echo goes off before the prompt appears: whatever is typed (or pasted) as soon as it shows is never echoed.
  input.setRawMode(true);
  process.stderr.write(prompt);
  input.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = '';
      const onData = (data: Buffer) => {
        for (const ch of data.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            input.off('data', onData);
            process.stderr.write('\n');
            return resolve(value);
          }
          if (ch === '\u0003') {
            input.off('data', onData);
            return reject(new CliError('INPUT_INVALID', 'cancelled'));
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
  }
}
