import { KeyhubError } from '@keyhub/shared';

const MAX_INPUT = 512;

/**
 * One line from the terminal with echo off, as bytes: nothing is printed
 * per key, and what was typed never becomes a JS string (those cannot be
 * wiped). The chunks read are zeroed as they are consumed; the caller wipes
 * the result. Backspace deletes, Ctrl-U clears the line, Ctrl-C cancels.
 * Only for a terminal: a custodian's part is never read from a pipe.
 */
export async function readHiddenLine(prompt: string): Promise<Buffer> {
  const input = process.stdin;
  if (!input.isTTY) throw new KeyhubError('TERMINAL_REQUIRED', 'key components are entered in a terminal, with hidden input; run this command in one');
  // Echo goes off before the prompt appears: nothing typed as soon as it shows is echoed.
  input.setRawMode(true);
  process.stderr.write(prompt);
  input.resume();
  const line = Buffer.alloc(MAX_INPUT);
  let n = 0;
  let overflow = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (data: Buffer) => {
        try {
          for (const c of data) {
            if (c === 0x0d || c === 0x0a) {
              input.off('data', onData);
              process.stderr.write('\n');
              return resolve();
            }
            if (c === 0x03) {
              input.off('data', onData);
              process.stderr.write('\n');
              return reject(new KeyhubError('COMPONENT_INVALID', 'cancelled at the keyboard'));
            }
            if (c === 0x7f || c === 0x08) n = Math.max(0, n - 1);
            else if (c === 0x15) n = 0;
            else if (n < MAX_INPUT) line[n++] = c;
            else overflow = true;
          }
        } finally {
          data.fill(0);
        }
      };
      input.on('data', onData);
    });
    if (overflow) throw new KeyhubError('COMPONENT_INVALID', `input longer than ${MAX_INPUT} characters`);
    return Buffer.from(line.subarray(0, n));
  } finally {
    line.fill(0);
    input.setRawMode(false);
    input.pause();
  }
}
