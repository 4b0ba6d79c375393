import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { run } from '../env';

describe('the demo (npm run demo)', function () {
  this.timeout(240_000);

  it('runs to completion: keys reach both sites, confirmed, and the audit chain verifies', async () => {
    const r = await run(process.execPath, [path.resolve(__dirname, '../demo/main.js')], { timeoutMs: 230_000 });
    assert.equal(r.code, 0, r.stdout.slice(-3000) + r.stderr.slice(-3000));
    assert.match(r.stdout, /Demo complete/);
    const statusBlock = r.stdout.split('== keyhub status')[1]?.split('==')[0] ?? '';
    const rows = statusBlock.split('\n').filter((l) => /^(payments-zmk|tokenization-key)\s/.test(l));
    assert.equal(rows.length, 4, 'two keys x two sites');
    for (const row of rows) assert.match(row, /\bconfirmed\b/);
    assert.match(r.stdout, /audit chain ok/);
  });
});
