import type { api } from '@keyhub/protocol';
import { decisionCounts } from '../../domain/approval-rule';
import { summarize, type StoredRequest } from '../../domain/approval-actions';
import type { DecisionRow, RequestRow } from '../../store/queries/approvals';

export function decisionFacts(d: DecisionRow) {
  return {
    operatorId: d.operator_id,
    decision: d.decision,
    requestHash: d.request_hash,
    expiresAt: d.expires_at,
    operatorActive: d.operator_state === 'active',
    operatorIsApprover: d.operator_roles.includes('approver'),
  };
}

export function requestFacts(r: RequestRow, hash: string) {
  return { requestedBy: r.requested_by, hash, required: r.required, expiresAt: r.expires_at };
}

export function parseStored(r: RequestRow): StoredRequest {
  return JSON.parse(r.canonical.toString('utf8')) as StoredRequest;
}

/** The API's view of a request: its exact canonical bytes, and which decisions would count now. */
export function approvalView(r: RequestRow, decisions: DecisionRow[], now = new Date()): api.ApprovalRequestView {
  const facts = requestFacts(r, r.hash);
  const views = decisions.map((d) => ({
    operator: d.operator_name,
    decision: d.decision,
    at: d.created_at.toISOString(),
    expiresAt: d.expires_at.toISOString(),
    counts: decisionCounts(decisionFacts(d), facts, now),
  }));
  const state = r.state === 'pending' && r.expires_at.getTime() <= now.getTime() ? 'expired' : r.state;
  return {
    id: r.id,
    action: r.action as api.PolicyAction,
    canonical: r.canonical.toString('utf8'),
    hash: r.hash,
    summary: summarize(parseStored(r)),
    required: r.required,
    approvals: views.filter((v) => v.counts).length,
    state: state as api.ApprovalState,
    requestedBy: r.requested_by_name,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at.toISOString(),
    decidedAt: r.decided_at ? r.decided_at.toISOString() : null,
    decisions: views,
    errorCode: r.error_code,
    result: r.result,
  };
}
