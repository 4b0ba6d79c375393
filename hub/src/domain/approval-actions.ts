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
      /** `targetKinds`: the key's target policy when asked; a key goes to the destinations of those kinds only (issue 12). */
      keys: Array<{ name: string; version: number; kcv: string; sensitive: boolean; targetKinds?: string[] }>;
      /** Only destinations some key's policy allows; `kind`: the target's kind when asked. */
      destinations: Array<{ listenerId: string; target: string; kind?: string }>;
    }
  | { action: 'listener.approve'; listenerId: string; fingerprint: string }
  | { action: 'operator.manage'; change: 'create'; name: string; roles: api.Role[]; tokenTtlSeconds: number }
  | { action: 'operator.manage'; change: 'grant'; name: string; add: api.Role[]; remove: api.Role[] }
  | { action: 'operator.manage'; change: 'token'; name: string; roles: api.Role[] | null; ttlSeconds: number; description: string }
  | { action: 'operator.manage'; change: 'certificate'; name: string; publicKeyPem: string; publicKeySha256: string; validityDays: number }
  | { action: 'approval_policy.update'; policy: api.PolicyAction; from: { required: number; enabled: boolean }; to: { required: number; enabled: boolean } }
  | { action: 'key.destroy' | 'key.compromise'; key: string; keyId: string; version: number; kcv: string; reason: string | null }
  /** `fingerprint` pins the site as enrolled when asked: a site that enrolled again meanwhile is not what was approved. */
  | { action: 'listener.decommission'; listenerId: string; fingerprint: string; force: boolean; timeoutSeconds: number; reason: string | null }
  /** `fingerprint`: the target transport key's, recomputed from the stored request when asked and again when run. */
  | { action: 'listener.target_approve'; listenerId: string; target: string; fingerprint: string }
  /** The enrollment approved with a root KEK by key components: `custodians` in part order, every one of them an approver of this request. */
  | { action: 'listener.root_kek_components'; listenerId: string; fingerprint: string; scheme: 'xor' | 'shamir'; threshold: number; custodians: string[] }
  /** A site's signed target update (issue 12), as the approvers read it: `updateId` pins that update; a newer one is not what was approved. */
  | { action: 'listener.target_update'; listenerId: string; target: string; updateId: string; op: 'add' | 'remove'; kind: string; settings: Record<string, string> }
  /** A key's target policy widened (issue 12): from what, to what. */
  | { action: 'key.target_policy'; key: string; keyId: string; from: { targetKinds: string[]; allowClearImport: boolean }; to: { targetKinds: string[]; allowClearImport: boolean } }
  | PlacementDocument;

/**
 * A distribution policy that widens a sensitive key's reach: made
 * ('create', naming the whole policy), or widened later ('widen': a site
 * that matches now, or a new version). `sites` ("listener/target") are the
 * sites the approval covers, resolved when asked; `futureSites` and
 * `futureVersions` say whether later matches and versions need no new request.
 */
export type PlacementDocument =
  | {
      action: 'placement.sensitive';
      change: 'create';
      placement: string;
      key: string;
      version: number;
      kcv: string;
      listeners: string[];
      selector: Record<string, string> | null;
      targets: string[];
      futureVersions: boolean;
      futureSites: boolean;
      destroyExtras: boolean;
      sites: string[];
    }
  | {
      action: 'placement.sensitive';
      change: 'widen';
      placement: string;
      placementId: string;
      key: string;
      version: number;
      kcv: string;
      futureVersions: boolean;
      futureSites: boolean;
      sites: string[];
    };

/** What the stored request holds: the action document plus who asked and when. */
export type StoredRequest = ActionDocument & { requestedBy: string; requestedAt: string; requestId: string };

/** One line an approver reads in a list before opening the whole request. */
/**
 * The operators who alone may decide on a request, when its document names
 * them: a key-component ceremony's custodians (approving it is taking a
 * part). Undefined: any approver but the requester.
 */
export function namedDeciders(doc: ActionDocument): string[] | undefined {
  return doc.action === 'listener.root_kek_components' ? doc.custodians : undefined;
}

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
    case 'key.destroy':
    case 'key.compromise':
      return `${doc.action === 'key.destroy' ? 'destroy' : 'mark compromised'} ${doc.key} v${doc.version} (kcv ${doc.kcv}) at the hub and at every site that holds it${doc.reason ? `: ${doc.reason}` : ''}`;
    case 'listener.decommission':
      return `decommission listener ${doc.listenerId}: revoke its root KEKs, ${doc.force ? 'revoke its NATS identity at once, sending no destroy' : `destroy what it holds, then revoke its NATS identity (within ${doc.timeoutSeconds} s)`}${doc.reason ? `: ${doc.reason}` : ''}`;
    case 'listener.root_kek_components':
      return `approve the enrollment of listener ${doc.listenerId} (fingerprint ${doc.fingerprint}) with a root KEK in ${doc.scheme === 'xor' ? `${doc.custodians.length} XOR components` : `Shamir shares, ${doc.threshold} of ${doc.custodians.length}`}, one each for ${doc.custodians.join(', ')}`;
    case 'listener.target_approve':
      return `make the own KEK of target ${doc.target} of listener ${doc.listenerId}, wrapped to the transport key with fingerprint ${doc.fingerprint}`;
    case 'listener.target_update': {
      const settings = Object.entries(doc.settings)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
      return `${doc.op === 'add' ? 'add' : 'remove'} ${doc.kind} target ${doc.target} ${doc.op === 'add' ? 'to' : 'from'} listener ${doc.listenerId}${settings ? ` (${settings})` : ''}`;
    }
    case 'key.target_policy':
      return `let key ${doc.key} reach ${doc.to.targetKinds.join(', ')} targets${doc.to.allowClearImport ? ', with cloud import in clear (JWK)' : ''} (was ${doc.from.targetKinds.join(', ')}${doc.from.allowClearImport ? ', with clear import' : ''})`;
    case 'placement.sensitive': {
      const sites = `${doc.sites.length} site(s)${doc.sites.length ? `: ${doc.sites.slice(0, 5).join(', ')}${doc.sites.length > 5 ? ', ...' : ''}` : ''}`;
      const later = `${doc.futureVersions ? 'later versions' : 'this version only'}, ${doc.futureSites ? 'sites that match later' : 'these sites only'}`;
      return `${doc.change === 'create' ? 'create placement' : 'widen placement'} ${doc.placement}: ${doc.key} v${doc.version} (kcv ${doc.kcv}) to ${sites} (${later})`;
    }
  }
}

function describePolicy(p: { required: number; enabled: boolean }): string {
  return p.enabled ? `on, ${p.required} approvals` : `off (${p.required} approvals when on)`;
}
