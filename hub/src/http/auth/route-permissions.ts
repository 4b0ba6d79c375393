import type { Permission } from '../../domain/roles';

/**
 * The one table of what each route needs. A route missing here is refused
 * to everyone (and the server will not start with one: see server.ts), so
 * nothing is ever allowed by default. 'public' routes carry nothing secret.
 */
export type RouteAccess = Permission | 'public';

export const ROUTE_PERMISSIONS: Readonly<Record<string, RouteAccess>> = {
  'GET /v1/health': 'public',
  'GET /v1/openapi.json': 'public',
  'GET /v1/hub': 'hub:read',
  'GET /v1/hub/ca': 'hub:read',
  'GET /v1/hub/crl/:profile': 'hub:read',
  'GET /v1/auth/whoami': 'tokens:self',

  'GET /v1/keys': 'keys:read',
  'POST /v1/keys': 'keys:write',
  'GET /v1/keys/:name/status': 'keys:read',
  'GET /v1/keys/:name': 'keys:read',
  'POST /v1/keys/:name/rotate': 'keys:write',
  'POST /v1/keys/:name/state': 'keys:write',
  'PUT /v1/keys/:name/target-policy': 'keys:write',
  // Certificates are public material; issuing one, importing one, or a CSR (a signature by the key) is a key officer's.
  'GET /v1/keys/:name/versions/:version/certificate': 'keys:read',
  'POST /v1/keys/:name/versions/:version/certificate': 'keys:write',
  'PUT /v1/keys/:name/versions/:version/certificate': 'keys:write',
  'POST /v1/keys/:name/versions/:version/csr': 'keys:write',
  'GET /v1/status': 'keys:read',
  'GET /v1/keys/:name/commands': 'keys:read',
  'GET /v1/commands': 'keys:read',

  'GET /v1/listeners': 'listeners:read',
  'GET /v1/listeners/:id': 'listeners:read',
  'POST /v1/listeners/:id/approve': 'listeners:approve',
  'POST /v1/listeners/:id/register': 'listeners:register',
  'POST /v1/listeners/:id/revoke': 'listeners:revoke',
  // A new root KEK for a site is what an approval makes; cutting a site off (compromise, decommission) is what revoke does.
  'POST /v1/listeners/:id/rotate-kek': 'listeners:approve',
  'POST /v1/listeners/:id/root-kek/components': 'listeners:approve',
  'POST /v1/listeners/:id/root-kek/components/mine': 'approvals:decide',
  'POST /v1/listeners/:id/compromise-kek': 'listeners:revoke',
  'POST /v1/listeners/:id/decommission': 'listeners:revoke',
  // A target's own KEK is what an enrollment approval makes for the site's own token.
  'GET /v1/listeners/:id/targets': 'listeners:read',
  'POST /v1/listeners/:id/targets/:target/approve': 'listeners:approve',
  'POST /v1/listeners/:id/targets/:target/approve-update': 'listeners:approve',
  // Like a root KEK rotation: a new KEK for the site (here for one of its target tokens).
  'POST /v1/listeners/:id/targets/:target/rotate-kek': 'listeners:approve',

  'POST /v1/distributions': 'distributions:write',
  'POST /v1/distributions/progress': 'keys:read',

  // Labels decide where placements put keys: set by those who push keys.
  'PATCH /v1/listeners/:id/labels': 'distributions:write',
  'GET /v1/placements': 'keys:read',
  'POST /v1/placements': 'distributions:write',
  'GET /v1/placements/:name': 'keys:read',
  'PATCH /v1/placements/:name': 'distributions:write',
  'DELETE /v1/placements/:name': 'distributions:write',
  'POST /v1/placements/reconcile': 'distributions:write',
  'GET /v1/drift': 'keys:read',

  'GET /v1/operators': 'operators:read',
  'POST /v1/operators': 'operators:write',
  'GET /v1/operators/:name': 'operators:read',
  'PATCH /v1/operators/:name/roles': 'operators:write',
  'POST /v1/operators/:name/revoke': 'operators:write',

  'GET /v1/tokens': 'tokens:self',
  'POST /v1/tokens': 'tokens:self',
  'POST /v1/tokens/:id/revoke': 'tokens:self',

  // Your own client certificates; another operator's only as admin (issue, revoke) or admin and auditor (read), checked by the operation.
  'POST /v1/operators/:name/certificates': 'certificates:self',
  'GET /v1/certificates/:serial': 'certificates:self',
  'POST /v1/certificates/:serial/revoke': 'certificates:self',

  'GET /v1/policies': 'policies:read',
  'PUT /v1/policies/:action': 'policies:write',

  'GET /v1/approvals': 'approvals:read',
  'GET /v1/approvals/:id': 'approvals:read',
  'POST /v1/approvals/:id/approve': 'approvals:decide',
  'POST /v1/approvals/:id/reject': 'approvals:decide',
  'POST /v1/approvals/:id/cancel': 'approvals:read',
  'POST /v1/approvals/:id/pickup': 'approvals:read',

  'GET /v1/audit/events': 'audit:read',
  'GET /v1/audit/checkpoints': 'audit:read',
  'POST /v1/audit/checkpoints': 'audit:write',

  // Reports read what their area's read permission shows (auditors hold all three; key officers the key and site reports).
  'GET /v1/reports/keys/:name': 'keys:read',
  'GET /v1/reports/sites/:id': 'listeners:read',
  'GET /v1/reports/ledger': 'audit:read',

  // The dashboard (hub/src/dashboard): the same permissions as the API reads and writes it shows or runs.
  'GET /ui': 'tokens:self',
  'GET /ui/login': 'public',
  'POST /ui/login': 'public',
  'POST /ui/logout': 'tokens:self',
  'GET /ui/static/*': 'public',
  'GET /ui/keys': 'keys:read',
  'GET /ui/matrix': 'keys:read',
  'GET /ui/listeners': 'listeners:read',
  'GET /ui/drift': 'keys:read',
  'GET /ui/approvals': 'approvals:read',
  'POST /ui/approvals/:id/approve': 'approvals:decide',
  'POST /ui/approvals/:id/reject': 'approvals:decide',
  'GET /ui/audit': 'audit:read',
  'GET /ui/audit/events/:seq': 'audit:read',
};

export function routeKey(method: string, url: string): string {
  return `${method.toUpperCase()} ${url}`;
}
