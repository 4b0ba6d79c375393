import type { api } from '@keyhub/protocol';

type Role = api.Role;

/**
 * What each role may do. Separation of duties: admins manage people and
 * policies but cannot touch keys; key officers create and push keys but
 * cannot approve anything; approvers only decide on requests (and act as
 * custodians in ceremonies); auditors only read.
 */
export const PERMISSIONS = [
  'hub:read',
  'keys:read',
  'keys:write',
  'distributions:write',
  'listeners:read',
  'listeners:approve',
  'listeners:register',
  'listeners:revoke',
  'operators:read',
  'operators:write',
  'tokens:self',
  'certificates:self',
  'policies:read',
  'policies:write',
  'approvals:read',
  'approvals:decide',
  'audit:read',
  'audit:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** What every authenticated operator may read: the hub's identity, the policies and requests, their own tokens and client certificates. */
const EVERYONE: Permission[] = ['hub:read', 'policies:read', 'approvals:read', 'tokens:self', 'certificates:self'];

/**
 * Least privilege: key and listener metadata only for those who work with
 * keys (key officers) or check them (auditors); an approver decides on the
 * request in front of them, whose canonical bytes name the key versions,
 * KCVs, listeners and fingerprints. Auditors also see operators and their
 * roles, for access reviews.
 */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  admin: [...EVERYONE, 'operators:read', 'operators:write', 'policies:write', 'audit:read', 'audit:write'],
  'key-officer': [...EVERYONE, 'keys:read', 'listeners:read', 'keys:write', 'distributions:write', 'listeners:approve', 'listeners:register', 'listeners:revoke'],
  approver: [...EVERYONE, 'approvals:decide'],
  auditor: [...EVERYONE, 'keys:read', 'listeners:read', 'operators:read', 'audit:read'],
};

/** Roles in force for a credential: the operator's current roles, narrowed by a token's scope. */
export function effectiveRoles(operatorRoles: readonly Role[], tokenScope: readonly Role[] | null): Role[] {
  return tokenScope === null ? [...operatorRoles] : operatorRoles.filter((r) => tokenScope.includes(r));
}

export function permissionsOf(roles: readonly Role[]): Set<Permission> {
  return new Set(roles.flatMap((r) => ROLE_PERMISSIONS[r]));
}

export function allows(roles: readonly Role[], permission: Permission): boolean {
  return roles.some((r) => ROLE_PERMISSIONS[r].includes(permission));
}
