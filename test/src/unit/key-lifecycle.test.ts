import { strict as assert } from 'node:assert';
import { KeyhubError } from '@keyhub/shared';
import {
  assertKeyStateTransition,
  canChangeKeyState,
  graceDeadline,
  initialSchedule,
  isDistributable,
  isRotationDue,
  KEY_STATE_ACTIONS,
  KEY_STATES,
  siteCommandFor,
  targetStateOf,
  type KeyState,
} from '@keyhub/hub/dist/domain/key-lifecycle';

/**
 * The SP 800-57 Part 1 Rev. 5 section 7 transitions, written out here from
 * the standard's figure (not read from the module under test): every pair of
 * states not listed must be refused.
 */
const ALLOWED: ReadonlyArray<[KeyState, KeyState]> = [
  ['pre-activation', 'destroyed'],
  ['pre-activation', 'compromised'],
  ['pre-activation', 'active'],
  ['active', 'compromised'],
  ['active', 'suspended'],
  ['active', 'deactivated'],
  ['suspended', 'active'],
  ['suspended', 'compromised'],
  ['suspended', 'deactivated'],
  ['deactivated', 'compromised'],
  ['deactivated', 'destroyed'],
  ['compromised', 'destroyed'],
];

describe('key lifecycle (NIST SP 800-57 key version states)', () => {
  const allowed = new Set(ALLOWED.map(([f, t]) => `${f}->${t}`));

  describe('every (from, to) pair', () => {
    assert.equal(KEY_STATES.length, 6);
    for (const from of KEY_STATES) {
      for (const to of KEY_STATES) {
        const ok = allowed.has(`${from}->${to}`);
        it(`${from} -> ${to}: ${ok ? 'allowed' : 'refused'}`, () => {
          assert.equal(canChangeKeyState(from, to), ok);
          if (ok) assert.doesNotThrow(() => assertKeyStateTransition(from, to));
          else
            assert.throws(
              () => assertKeyStateTransition(from, to),
              (e: unknown) => KeyhubError.is(e, 'KEY_STATE_TRANSITION_INVALID') && (e.details as { from: string; to: string }).to === to,
            );
        });
      }
    }
  });

  it('counts 12 allowed and 24 refused pairs, destroyed is terminal and nothing returns from compromised to use', () => {
    let n = 0;
    for (const f of KEY_STATES) for (const t of KEY_STATES) if (canChangeKeyState(f, t)) n++;
    assert.equal(n, 12);
    for (const t of KEY_STATES) assert.equal(canChangeKeyState('destroyed', t), false);
    for (const t of ['active', 'suspended', 'deactivated', 'pre-activation'] as const) assert.equal(canChangeKeyState('compromised', t), false);
  });

  it('refuses an unknown stored state', () => {
    assert.throws(
      () => assertKeyStateTransition('frozen', 'active'),
      (e: unknown) => KeyhubError.is(e, 'KEY_STATE_TRANSITION_INVALID'),
    );
  });

  it('maps each operator action to its target state, activate only from pre-activation and resume only from suspended', () => {
    const cases: Array<[(typeof KEY_STATE_ACTIONS)[number], KeyState, KeyState | 'refused']> = [
      ['activate', 'pre-activation', 'active'],
      ['activate', 'suspended', 'refused'],
      ['resume', 'suspended', 'active'],
      ['resume', 'pre-activation', 'refused'],
      ['resume', 'active', 'refused'],
      ['suspend', 'active', 'suspended'],
      ['suspend', 'suspended', 'refused'],
      ['deactivate', 'active', 'deactivated'],
      ['deactivate', 'suspended', 'deactivated'],
      ['deactivate', 'pre-activation', 'refused'],
      ['compromise', 'deactivated', 'compromised'],
      ['compromise', 'destroyed', 'refused'],
      ['destroy', 'compromised', 'destroyed'],
      ['destroy', 'suspended', 'refused'],
      ['destroy', 'active', 'refused'],
    ];
    for (const [action, from, want] of cases) {
      if (want === 'refused')
        assert.throws(
          () => targetStateOf(action, from),
          (e: unknown) => KeyhubError.is(e, 'KEY_STATE_TRANSITION_INVALID'),
          `${action} from ${from}`,
        );
      else assert.equal(targetStateOf(action, from), want, `${action} from ${from}`);
    }
  });

  it('sends a site command for every allowed transition except activation', () => {
    for (const [from, to] of ALLOWED) {
      const cmd = siteCommandFor(to, from);
      if (from === 'pre-activation' && to === 'active') assert.equal(cmd, undefined);
      else assert.ok(cmd, `${from} -> ${to}`);
    }
    assert.equal(siteCommandFor('active', 'suspended'), 'resume');
  });

  it('distributes only active versions', () => {
    assert.deepEqual(
      KEY_STATES.filter((s) => isDistributable(s)),
      ['active'],
    );
  });

  it('schedules: a future activation starts in pre-activation, the cryptoperiod runs from activation', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    assert.deepEqual(initialSchedule(now, undefined, null), { state: 'active', activateAt: now, deactivateAt: null });
    const later = new Date('2026-01-02T00:00:00Z');
    const s = initialSchedule(now, later, 86_400);
    assert.equal(s.state, 'pre-activation');
    assert.equal(s.deactivateAt?.toISOString(), '2026-01-03T00:00:00.000Z');
    assert.equal(initialSchedule(now, new Date('2025-12-31T00:00:00Z'), null).state, 'active', 'a date in the past activates at once');
    assert.equal(graceDeadline(now, 60, null).toISOString(), '2026-01-01T00:01:00.000Z');
    assert.equal(graceDeadline(now, 60, new Date('2026-01-01T00:00:30Z')).toISOString(), '2026-01-01T00:00:30.000Z', 'an earlier end of cryptoperiod is kept');
    assert.equal(isRotationDue(now, new Date('2025-12-31T00:00:00Z'), 86_400), true);
    assert.equal(isRotationDue(now, new Date('2025-12-31T00:00:01Z'), 86_400), false);
    assert.equal(isRotationDue(now, new Date('2025-01-01T00:00:00Z'), null), false);
  });
});
