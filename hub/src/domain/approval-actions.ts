import type { api } from '@keyhub/protocol';

/**
 * The documents that dual control stores and approvers read. Each names
 * everything the action will do, resolved when it is requested: key
 * versions, not "current"; listeners and targets, not "all". Approving one
 * therefore never authorizes anything that was not in front of the approver.
 */
export type ActionDocument =
  | {
      action: 'distribution.sensitive';
      keys: Array<{ name: string; version: number; kcv: string; sensitive: boolean }>;
      destinations: Array<{ listenerId: string; target: string }>;
    }
  | { action: 'listener.approve'; listenerId: string; fingerprint: string }
  | { action: 'operator.manage'; change: 'create'; name: string; roles: api.Role[]; tokenTtlSeconds: number }
  | { action: 'operator.manage'; change: 'grant'; name: string; add: api.Role[]; remove: api.Role[] }
  | { action: 'operator.manage'; change: 'token'; name: string; roles: api.Role[] | null; ttlSeconds: number; description: string }
  | { action: 'operator.manage'; change: 'certificate'; name: string; publicKeyPem: string; publicKeySha256: string; validityDays: number }
  | { action: 'approval_policy.update'; policy: api.PolicyAction; from: { required: number; enabled: boolean }; to: { required: number; enabled: boolean } };

/** What the stored request holds: the action document plus who asked and when. */
export type StoredRequest = ActionDocument & { requestedBy: string; requestedAt: string; requestId: string };

/** One line an approver reads in a list before opening the whole request. */
export function summarize(doc: ActionDocument): string {
  switch (doc.action) {
    case 'distribution.sensitive': {
      const keys = doc.keys.length === 1 ? `${doc.keys[0].name} v${doc.keys[0].version} (kcv ${doc.keys[0].kcv})` : `${doc.keys.length} keys`;
      const listeners = new Set(doc.destinations.map((d) => d.listenerId));
      return `distribute ${keys} to ${doc.destinations.length} target(s) at ${listeners.size} listener(s): ${[...listeners].slice(0, 5).join(', ')}${listeners.size > 5 ? ', ...' : ''}`;
    }
    case 'listener.approve':
      return `approve the enrollment of listener ${doc.listenerId} (fingerprint ${doc.fingerprint})`;
    case 'operator.manage':
      if (doc.change === 'create') return `create operator ${doc.name} with roles ${doc.roles.join(', ')}`;
      if (doc.change === 'grant') return `change the roles of operator ${doc.name}: add ${doc.add.join(', ') || 'none'}, remove ${doc.remove.join(', ') || 'none'}`;
      if (doc.change === 'certificate') return `issue a client certificate to operator ${doc.name} for the key with SHA-256 ${doc.publicKeySha256}, valid ${doc.validityDays} days`;
      return `issue a token to operator ${doc.name}${doc.roles ? ` scoped to ${doc.roles.join(', ')}` : ''}`;
    case 'approval_policy.update':
      return `approval policy ${doc.policy}: ${describePolicy(doc.from)} -> ${describePolicy(doc.to)}`;
  }
}

function describePolicy(p: { required: number; enabled: boolean }): string {
  return p.enabled ? `on, ${p.required} approvals` : `off (${p.required} approvals when on)`;
}
