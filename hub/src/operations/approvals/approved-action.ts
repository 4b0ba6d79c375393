import type { InjectionToken } from 'tsyringe';
import type { EntityManager } from 'typeorm';
import type { api } from '@keyhub/protocol';
import type { StoredRequest } from '../../domain/approval-actions';

export type ActionResult = Record<string, string | number | boolean>;

export interface ApprovedRun {
  requestId: string;
  requester: { id: string; name: string };
  /** Names of the approvers whose approvals counted. */
  approvers: string[];
}

/**
 * Carries out one kind of approved action. An action that fits in one
 * transaction runs inside the one that re-checks the hash and the quorum and
 * records the execution, so it happens exactly when that commits. Long work
 * that commits in its own transactions (a chunked distribute) starts right
 * after that commit instead; it is idempotent, so a crash in between is
 * repaired by running the same distribution again.
 */
export interface ApprovedActionRunner {
  runInTransaction?(m: EntityManager, doc: StoredRequest, run: ApprovedRun): Promise<ActionResult>;
  runAfterCommit?(doc: StoredRequest, run: ApprovedRun): Promise<ActionResult>;
}

export type ApprovedActionRunners = ReadonlyMap<api.PolicyAction, ApprovedActionRunner>;
export const APPROVED_ACTION_RUNNERS: InjectionToken<ApprovedActionRunners> = Symbol('ApprovedActionRunners');
