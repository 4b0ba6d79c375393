import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { run } from '../env';

const REPO = path.resolve(__dirname, '../../..');
const bin = (name: string) => path.join(REPO, 'node_modules', '.bin', name);

/** Lint and format run with the tests, so CI and `npm test` hold every change to the same style. */
describe('style: the linter and the formatter pass', function () {
  this.timeout(120_000);

  it('npm run lint (typescript-eslint) finds nothing', async () => {
    const r = await run(bin('eslint'), ['--config', '.eslint.config.mjs', '.'], { env: { ...process.env, FORCE_COLOR: '0' }, timeoutMs: 110_000, cwd: REPO });
    assert.equal(r.code, 0, `eslint:\n${r.stdout}${r.stderr}`);
  });

  it('npm run format:check (prettier) finds nothing to reformat', async () => {
    const r = await run(bin('prettier'), ['--check', '.'], { env: process.env, timeoutMs: 110_000, cwd: REPO });
    assert.equal(r.code, 0, `prettier --check:\n${r.stdout}${r.stderr}`);
  });
});
