/**
 * The dual-control rule, as pure functions: which decisions count towards a
 * request's quorum at the moment it would run. Counted at execution, not
 * when given: an approver revoked or stripped of the role since, an
 * approval that expired, or one given for other bytes no longer counts.
 */
export interface DecisionFacts {
  operatorId: string;
  decision: 'approve' | 'reject';
  /** The hash the approver was shown and repeated. */
  requestHash: string;
  expiresAt: Date;
  /** The approver's standing now, not when they decided. */
  operatorActive: boolean;
  operatorIsApprover: boolean;
}

export interface RequestFacts {
  requestedBy: string;
  /** SHA-256 of the stored canonical bytes, recomputed now. */
  hash: string;
  required: number;
  expiresAt: Date;
}

export function decisionCounts(d: DecisionFacts, r: RequestFacts, now: Date): boolean {
  return d.decision === 'approve' && d.operatorId !== r.requestedBy && d.requestHash === r.hash && d.operatorActive && d.operatorIsApprover && d.expiresAt.getTime() > now.getTime();
}

/** Distinct operators whose approval counts now. */
export function countValidApprovals(decisions: readonly DecisionFacts[], r: RequestFacts, now: Date): number {
  return new Set(decisions.filter((d) => decisionCounts(d, r, now)).map((d) => d.operatorId)).size;
}

export type QuorumVerdict = 'run' | 'wait' | 'rejected' | 'expired';

/**
 * One valid rejection vetoes: dual control exists so that any one of the
 * people asked can stop an action, while it takes several to allow it.
 */
export function quorumVerdict(decisions: readonly DecisionFacts[], r: RequestFacts, now: Date): QuorumVerdict {
  if (r.expiresAt.getTime() <= now.getTime()) return 'expired';
  if (decisions.some((d) => d.decision === 'reject' && d.operatorActive && d.operatorIsApprover && d.operatorId !== r.requestedBy)) return 'rejected';
  return countValidApprovals(decisions, r, now) >= r.required ? 'run' : 'wait';
}

/**
 * A policy can be switched on (or made stricter) only when enough approvers
 * exist to ever satisfy it; otherwise every action under it would be stuck.
 */
export function policySatisfiable(required: number, activeApprovers: number): boolean {
  return activeApprovers >= required;
}
