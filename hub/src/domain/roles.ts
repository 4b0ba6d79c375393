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
  'operators:read',
  'operators:write',
  'tokens:self',
  'policies:read',
  'policies:write',
  'approvals:read',
  'approvals:decide',
  'audit:read',
  'audit:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const READ_ALL: Permission[] = ['hub:read', 'keys:read', 'listeners:read', 'policies:read', 'approvals:read', 'tokens:self'];

export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  admin: [...READ_ALL, 'operators:read', 'operators:write', 'policies:write', 'audit:read', 'audit:write'],
  'key-officer': [...READ_ALL, 'keys:write', 'distributions:write', 'listeners:approve'],
  approver: [...READ_ALL, 'approvals:decide'],
  auditor: [...READ_ALL, 'operators:read', 'audit:read'],
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
