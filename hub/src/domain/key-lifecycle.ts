import { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';

/**
 * Key version states and the transitions between them, after NIST SP 800-57
 * Part 1 Rev. 5, section 7 ("Key States and Transitions", figure 3). Each
 * key version has its own state; the key row keeps its current version's
 * state as a summary.
 *
 * The twelve transitions of section 7, and nothing else:
 *  1. pre-activation -> destroyed    (never needed: destroyed before use)
 *  2. pre-activation -> compromised  (its integrity or secrecy is in doubt)
 *  3. pre-activation -> active       (activation date reached, or on request)
 *  4. active -> compromised
 *  5. active -> suspended            (temporarily out of use, e.g. an investigation)
 *  6. active -> deactivated          (end of cryptoperiod, or replaced by rotation)
 *  7. suspended -> active            (resumed)
 *  8. suspended -> compromised
 *  9. suspended -> deactivated       (its cryptoperiod ended while suspended)
 * 10. deactivated -> compromised     (a compromise found after retirement)
 * 11. deactivated -> destroyed
 * 12. compromised -> destroyed       (the record keeps that it was compromised)
 *
 * Decided on purpose: suspended -> destroyed is refused (section 7 has no such
 * edge: a suspended key may come back, so it is deactivated before it is
 * destroyed); nothing leaves destroyed; compromised never goes back to any
 * usable state; a transition to the state a version is already in is not a
 * transition and is refused like any other.
 */
export const KEY_STATES = api.KEY_STATES;
export type KeyState = api.KeyStateName;

export const KEY_STATE_TRANSITIONS: Readonly<Record<KeyState, readonly KeyState[]>> = {
  'pre-activation': ['active', 'compromised', 'destroyed'],
  active: ['suspended', 'deactivated', 'compromised'],
  suspended: ['active', 'deactivated', 'compromised'],
  deactivated: ['compromised', 'destroyed'],
  compromised: ['destroyed'],
  destroyed: [],
};

export function isKeyState(value: string): value is KeyState {
  return (KEY_STATES as readonly string[]).includes(value);
}

export function canChangeKeyState(from: KeyState, to: KeyState): boolean {
  return KEY_STATE_TRANSITIONS[from].includes(to);
}

/** KEY_STATE_TRANSITION_INVALID unless SP 800-57 allows `from` -> `to`. */
export function assertKeyStateTransition(from: string, to: KeyState, what = 'key version'): void {
  if (!isKeyState(from) || !canChangeKeyState(from, to)) {
    const allowed = isKeyState(from) ? KEY_STATE_TRANSITIONS[from].join(', ') || 'nothing (terminal)' : 'nothing (unknown state)';
    throw new KeyhubError('KEY_STATE_TRANSITION_INVALID', `${what} is ${from} and cannot become ${to} (allowed from ${from}: ${allowed})`, { details: { from, to } });
  }
}

/** What an operator asks for; `activate` takes a pre-activation version into use, `resume` a suspended one. */
export const KEY_STATE_ACTIONS = api.KEY_STATE_ACTIONS;
export type KeyStateAction = api.KeyStateActionName;

const ACTION_TARGET: Readonly<Record<KeyStateAction, KeyState>> = {
  activate: 'active',
  suspend: 'suspended',
  resume: 'active',
  deactivate: 'deactivated',
  compromise: 'compromised',
  destroy: 'destroyed',
};

/**
 * The state an action leads to from `from`. `activate` is only for
 * pre-activation versions and `resume` only for suspended ones, so that the
 * audit trail names what really happened.
 */
export function targetStateOf(action: KeyStateAction, from: string): KeyState {
  const to = ACTION_TARGET[action];
  const wrongSource = (action === 'activate' && from !== 'pre-activation') || (action === 'resume' && from !== 'suspended');
  if (wrongSource) throw new KeyhubError('KEY_STATE_TRANSITION_INVALID', `cannot ${action} a version that is ${from}`, { details: { from, to } });
  assertKeyStateTransition(from, to);
  return to;
}

/**
 * The command the sites holding a version receive for a transition; none
 * for activation, since a version is distributed only once it is active.
 */
export function siteCommandFor(to: KeyState, from: KeyState): 'suspend' | 'resume' | 'deactivate' | 'compromise' | 'destroy' | undefined {
  switch (to) {
    case 'suspended':
      return 'suspend';
    case 'active':
      return from === 'suspended' ? 'resume' : undefined;
    case 'deactivated':
      return 'deactivate';
    case 'compromised':
      return 'compromise';
    case 'destroyed':
      return 'destroy';
    default:
      return undefined;
  }
}

/** Only an active version may be packaged and sent to a site. */
export function isDistributable(state: string): boolean {
  return state === 'active';
}

/** A version whose material the hub keeps (wrapped); a destroyed one keeps only its metadata. */
export function keepsMaterial(state: string): boolean {
  return state !== 'destroyed';
}

/** The initial state and dates of a new version: pre-activation until `activateAt` if that is in the future. */
export function initialSchedule(now: Date, activateAt: Date | undefined, cryptoperiodSeconds: number | null | undefined): { state: KeyState; activateAt: Date; deactivateAt: Date | null } {
  const start = activateAt && activateAt.getTime() > now.getTime() ? activateAt : now;
  return {
    state: start === now ? 'active' : 'pre-activation',
    activateAt: start,
    deactivateAt: cryptoperiodSeconds ? new Date(start.getTime() + cryptoperiodSeconds * 1000) : null,
  };
}

/** The old version's end after a rotation: the grace period from now, unless its cryptoperiod ends sooner. */
export function graceDeadline(now: Date, graceSeconds: number, currentDeadline: Date | null): Date {
  const grace = new Date(now.getTime() + graceSeconds * 1000);
  return currentDeadline && currentDeadline.getTime() < grace.getTime() ? currentDeadline : grace;
}

/** Whether a key with a rotation interval is due for a new version. */
export function isRotationDue(now: Date, currentActivatedAt: Date | null, rotateEverySeconds: number | null): boolean {
  if (!rotateEverySeconds || !currentActivatedAt) return false;
  return currentActivatedAt.getTime() + rotateEverySeconds * 1000 <= now.getTime();
}
