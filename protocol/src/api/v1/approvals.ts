import { z } from 'zod';
import { operatorName, sha256Hex, shortText, timestamp, uuid } from './common';

/** Actions that an approval policy can put under dual control. */
export const POLICY_ACTIONS = [
  'distribution.sensitive',
  'listener.approve',
  'operator.manage',
  'approval_policy.update',
  'placement.sensitive',
  'key.destroy',
  'key.compromise',
  'listener.decommission',
  /** A root KEK set up by key components (issue 13): every custodian named approves; then each fetches their part once. */
  'listener.root_kek_components',
  /** A target's own KEK (issue 12): made and sent to the target token once approved. */
  'listener.target_approve',
  /** A key's policy widened to more kinds of target, or to clear (JWK) import (issue 12). */
  'key.target_policy',
  /** A target a listener added or removed after enrollment, by signed update (issue 12). */
  'listener.target_update',
] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];
export const policyAction = z.enum(POLICY_ACTIONS);

export const APPROVAL_STATES = ['pending', 'executed', 'rejected', 'failed', 'expired', 'cancelled'] as const;
export type ApprovalState = (typeof APPROVAL_STATES)[number];

export const policyView = z.strictObject({
  action: policyAction,
  required: z.number().int().min(1).max(16),
  enabled: z.boolean(),
  /** Active operators with the approver role: the N of M-of-N. */
  approvers: z.number().int().min(0),
  updatedAt: timestamp.nullable(),
  updatedBy: z.string().nullable(),
});
export type PolicyView = z.infer<typeof policyView>;
export const policyList = z.strictObject({ policies: z.array(policyView) });

export const policyUpdateBody = z
  .strictObject({ required: z.number().int().min(1).max(16).optional(), enabled: z.boolean().optional() })
  .refine((b) => b.required !== undefined || b.enabled !== undefined, { message: 'give required, enabled or both' });
export type PolicyUpdateBody = z.infer<typeof policyUpdateBody>;

export const decisionView = z.strictObject({
  operator: operatorName,
  decision: z.enum(['approve', 'reject']),
  at: timestamp,
  expiresAt: timestamp,
  /** Whether it would count if the request ran now (operator still active and an approver, not expired). */
  counts: z.boolean(),
});

export const approvalRequestView = z.strictObject({
  id: uuid,
  action: policyAction,
  /** The request exactly as stored: RFC 8785 canonical JSON. Approvers read this before they approve. */
  canonical: z.string().max(4 * 1024 * 1024),
  /** SHA-256 of `canonical`; an approval names it. */
  hash: sha256Hex,
  summary: shortText,
  required: z.number().int().min(1),
  approvals: z.number().int().min(0),
  state: z.enum(APPROVAL_STATES),
  requestedBy: operatorName,
  createdAt: timestamp,
  expiresAt: timestamp,
  decidedAt: timestamp.nullable(),
  decisions: z.array(decisionView),
  errorCode: z.string().nullable(),
  /** Identifiers of what the execution produced (never secrets). */
  result: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).nullable(),
});
export type ApprovalRequestView = z.infer<typeof approvalRequestView>;

/** What an action route answers (202) when its policy wants approvals first. */
export const approvalPending = z.strictObject({ approval: approvalRequestView });
export type ApprovalPending = z.infer<typeof approvalPending>;

export const approvalList = z.strictObject({ requests: z.array(approvalRequestView) });
export const approvalListQuery = z.strictObject({
  state: z.enum(APPROVAL_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const decideBody = z.strictObject({ hash: sha256Hex, comment: shortText.optional() });
export type DecideBody = z.infer<typeof decideBody>;
