import type { api } from '@keyhub/protocol';

/** Who is acting, as established by the API's authentication: every operation and audit event names one. */
export interface Principal {
  operatorId: string;
  /** The operator's name: what the audit trail records as the actor. */
  name: string;
  /** Roles in force for this credential (the operator's, narrowed by a token's scope). */
  roles: api.Role[];
  method: 'token' | 'certificate';
  tokenId: string | null;
  tokenScope: api.Role[] | null;
  /** A token's expiry: tokens it creates may not outlive it. */
  expiresAt: Date | null;
}

/** The identity of processes that act on their own (init, scheduled jobs), never a person. */
export const SYSTEM_ACTORS = { init: 'system:init', scheduler: 'system:scheduler' } as const;
