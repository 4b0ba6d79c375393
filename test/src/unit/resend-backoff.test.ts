import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { hasAttemptsLeft, isResendDue, RESEND_MAX_DOUBLINGS, resendDelaySeconds, resendOutcome, resendPollMs } from '@keyhub/hub/dist/domain/resend-backoff';

describe('re-send back-off', () => {
  it('doubles per attempt, at most RESEND_MAX_DOUBLINGS times', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 7, 8, 20].map((a) => resendDelaySeconds(30, a)),
      [30, 60, 120, 240, 1920, 1920, 1920],
    );
    assert.equal(RESEND_MAX_DOUBLINGS, 6);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3600 }), fc.integer({ min: 1, max: 50 }), (base, attempts) => {
        const d = resendDelaySeconds(base, attempts);
        assert.ok(d >= base && d <= base * 64);
        assert.ok(resendDelaySeconds(base, attempts + 1) >= d);
      }),
    );
  });

  it('is due only once the delay has passed since the last send', () => {
    const now = new Date('2025-01-01T00:10:00Z');
    assert.ok(!isResendDue(new Date(now.getTime() - 60_000), 2, 30, now), 'exactly the delay: not yet');
    assert.ok(isResendDue(new Date(now.getTime() - 60_001), 2, 30, now));
    assert.ok(!isResendDue(new Date(now.getTime() - 100_000), 3, 30, now));
  });

  it('re-issues while attempts are left, then fails', () => {
    assert.equal(resendOutcome(1, 5), 'reissue');
    assert.equal(resendOutcome(4, 5), 'reissue');
    assert.equal(resendOutcome(5, 5), 'fail');
    assert.equal(resendOutcome(9, 5), 'fail');
    assert.ok(hasAttemptsLeft(0, 1) && !hasAttemptsLeft(1, 1));
  });

  it('polls at half the base delay, between 1 and 5 seconds', () => {
    assert.deepEqual([1, 2, 4, 30, 3600].map(resendPollMs), [1000, 1000, 2000, 5000, 5000]);
  });
});
