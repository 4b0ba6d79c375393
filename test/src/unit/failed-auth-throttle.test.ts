import { strict as assert } from 'node:assert';
import { FailedAuthThrottle } from '@keyhub/hub/dist/http/auth/failed-auth-throttle';

describe('FailedAuthThrottle: failed authentications per address and window', () => {
  it('blocks an address after the limit, per address, until its window ends', () => {
    let t = 0;
    const th = new FailedAuthThrottle(3, 1000, () => t);
    for (let i = 0; i < 3; i++) {
      assert.equal(th.blocked('a'), false);
      th.recordFailure('a');
    }
    assert.equal(th.blocked('a'), true);
    assert.equal(th.blocked('b'), false, 'another address is not affected');
    t = 999;
    assert.equal(th.blocked('a'), true);
    t = 1000;
    assert.equal(th.blocked('a'), false, 'a new window starts');
  });

  it('keeps at most 10,000 addresses under a flood from many', () => {
    const th = new FailedAuthThrottle(1, 60_000, () => 0);
    for (let i = 0; i < 20_000; i++) th.recordFailure(`10.0.${i >> 8}.${i & 255}`);
    const size = (th as unknown as { windows: Map<string, unknown> }).windows.size;
    assert.ok(size <= 10_000, `tracked ${size}`);
  });
});
