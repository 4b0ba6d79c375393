import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, type AuditInput } from '../../audit/audit-log';
import { siteCommandFor, type KeyState } from '../../domain/key-lifecycle';
import { changeVersionState, syncKeyStates } from '../../store/queries/key-lifecycle';
import { queueKeyCommands, type KeyCommandRequest } from '../commands/queue-key-commands';

// Not a use case: the write step that ChangeKeyState and RunKeySchedule share.

/** A version moving from the state it was read in (under its row lock) to another. */
export interface VersionTransition {
  versionId: string;
  keyId: string;
  keyName: string;
  version: number;
  kcv?: string;
  from: KeyState;
  to: KeyState;
  reason?: string;
  /** Set by the scheduler: the date that made the transition due. */
  dueAt?: Date;
}

/**
 * Writes transitions in the caller's transaction, whose audit chain lock is
 * already held and whose version rows are locked: each state change
 * (guarded by its `from` state, so a change another replica made first
 * fails instead of repeating), the keys' summary state, one audit event per
 * change, and the commands to every site that holds the version
 * (queueKeyCommands: suspend, resume, deactivate, compromise, destroy).
 * All of it commits together or not at all.
 */
export async function writeTransitions(m: EntityManager, transitions: VersionTransition[], actor: string, extra: { approvers?: string[] } = {}): Promise<{ sites: number; commandIds: string[] }> {
  if (transitions.length === 0) return { sites: 0, commandIds: [] };
  for (const t of transitions) {
    if (!(await changeVersionState(m, t.versionId, t.from, t.to, t.reason ?? null))) {
      throw new KeyhubError('KEY_STATE_TRANSITION_INVALID', `version ${t.version} of ${t.keyName} is no longer ${t.from}`, { details: { from: t.from, to: t.to } });
    }
  }
  await syncKeyStates(m, [...new Set(transitions.map((t) => t.keyId))]);
  const events: AuditInput[] = transitions.map((t) => ({
    actor,
    action: 'key.state_changed',
    subject: `key:${t.keyName}`,
    details: {
      keyId: t.keyId,
      version: t.version,
      from: t.from,
      to: t.to,
      ...(t.kcv ? { kcv: t.kcv } : {}),
      ...(t.reason ? { reason: t.reason } : {}),
      ...(t.dueAt ? { scheduled: true, dueAt: t.dueAt.toISOString() } : {}),
      ...(extra.approvers ? { approvers: extra.approvers.join(',') } : {}),
    },
  }));
  await appendAudit(m, events);
  const requests: KeyCommandRequest[] = [];
  for (const t of transitions) {
    const action = siteCommandFor(t.to, t.from);
    if (action) requests.push({ keyVersionId: t.versionId, action, ...(t.reason ? { reason: t.reason } : {}), ...(t.dueAt ? { reasonCode: 'schedule' as const } : {}) });
  }
  if (requests.length === 0) return { sites: 0, commandIds: [] };
  const queued = await queueKeyCommands(m, requests, actor);
  return { sites: queued.sites, commandIds: queued.commandIds };
}
