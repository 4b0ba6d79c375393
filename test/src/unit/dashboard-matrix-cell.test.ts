import { strict as assert } from 'node:assert';
import { summarizeCell } from '@keyhub/hub/dist/operations/dashboard/matrix-cell';
import { csrfMatches, csrfTokenFor } from '@keyhub/hub/dist/operations/dashboard/csrf-token';

describe('dashboard: matrix cells and CSRF tokens (pure rules)', () => {
  it('a cell shows the state that most needs attention over its targets', () => {
    assert.equal(summarizeCell(2, { confirmed: 3, failed: 1 }).state, 'failed');
    assert.equal(summarizeCell(2, { confirmed: 3, sent: 1 }).state, 'sent');
    assert.equal(summarizeCell(2, { sent: 1, queued: 1 }).state, 'queued');
    assert.equal(summarizeCell(2, { confirmed: 2, superseded: 1 }).state, 'confirmed');
    assert.equal(summarizeCell(1, { superseded: 1, destroyed: 1 }).state, 'superseded');
    // A state the dashboard does not know yet is shown, not hidden behind known ones.
    assert.equal(summarizeCell(1, { confirmed: 1, 'awaiting-approval': 1 }).state, 'awaiting-approval');
    assert.equal(summarizeCell(1, { confirmed: 0 }).state, 'none');
    assert.deepEqual(summarizeCell(4, { confirmed: 1 }), { version: 4, state: 'confirmed', counts: { confirmed: 1 } });
  });

  it('a CSRF token is bound to its session id and compared strictly', () => {
    const a = 'a'.repeat(43);
    const b = 'b'.repeat(43);
    assert.equal(csrfTokenFor(a), csrfTokenFor(a));
    assert.notEqual(csrfTokenFor(a), csrfTokenFor(b));
    assert.ok(csrfMatches(csrfTokenFor(a), csrfTokenFor(a)));
    for (const bad of [csrfTokenFor(b), '', undefined, 42, csrfTokenFor(a).slice(1), `${csrfTokenFor(a)}x`]) assert.ok(!csrfMatches(csrfTokenFor(a), bad));
  });
});
