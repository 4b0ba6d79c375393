import { strict as assert } from 'node:assert';
import { FUZZ_DEFAULT_BUDGET } from './lib/budget';
import { FUZZ_STATS } from './lib/guards';

/** The fuzz targets of this folder, by the names their tests count under. */
const TARGETS = [
  'listener inbox + checkpoint witness',
  'hub UP handler (enrollments, root-KEK confirmations, receipts)',
  'hub heartbeat handler',
  'audit export parser',
  'witness copy parser',
  'listener journal parser',
  'listener checkpoint store',
];

/**
 * Runs after the other files of this folder (files run in name order):
 * when every fuzz target ran with the default budget, together they threw
 * at least 10,000 messages and files (issue 10).
 */
describe('fuzz total', () => {
  it('the fuzz targets threw at least 10,000 messages and files in all', function () {
    const ran = TARGETS.filter((t) => FUZZ_STATS.has(t));
    const total = [...FUZZ_STATS.values()].reduce((n, s) => n + s.messages, 0);
    if (ran.length < TARGETS.length) this.skip();
    process.stderr.write(`      fuzz total: ${total} messages and files thrown at ${ran.length} targets\n`);
    if (FUZZ_DEFAULT_BUDGET) assert.ok(total >= 10_000, `the fuzz targets threw ${total} messages, fewer than 10,000`);
  });
});
