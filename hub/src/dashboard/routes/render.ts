import type { FastifyReply, FastifyRequest } from 'fastify';
import { allows, type Permission } from '../../domain/roles';
import { csrfOf } from '../session';

/** The navigation, each entry shown only to those whose roles may open it (the permission table decides access either way). */
const NAV: ReadonlyArray<{ href: string; label: string; needs: Permission }> = [
  { href: '/ui/matrix', label: 'Distribution matrix', needs: 'keys:read' },
  { href: '/ui/keys', label: 'Keys', needs: 'keys:read' },
  { href: '/ui/approvals', label: 'Approvals', needs: 'approvals:read' },
  { href: '/ui/listeners', label: 'Listener health', needs: 'listeners:read' },
  { href: '/ui/drift', label: 'Drift', needs: 'keys:read' },
  { href: '/ui/audit', label: 'Audit trail', needs: 'audit:read' },
];

export function firstPageFor(roles: Parameters<typeof allows>[0]): string {
  return NAV.find((n) => allows(roles, n.needs))?.href ?? '/ui/approvals';
}

/** Renders a page inside the layout with what every page needs: who is logged in, their menu, the session's CSRF token. */
export async function page(req: FastifyRequest, reply: FastifyReply, template: string, title: string, data: Record<string, unknown>): Promise<FastifyReply> {
  const principal = req.principal ?? null;
  const nav = principal ? NAV.filter((n) => allows(principal.roles, n.needs)) : [];
  return reply
    .type('text/html; charset=utf-8')
    .view(template, { ...data, title, principal, nav, csrf: csrfOf(req), current: req.routeOptions.url, can: (p: Permission) => (principal ? allows(principal.roles, p) : false) });
}

/** A query-string value as a bounded string (undefined when absent, empty or too long): the pages never trust a query string's shape. */
export function q(query: unknown, name: string, max = 256): string | undefined {
  const v = query && typeof query === 'object' ? (query as Record<string, unknown>)[name] : undefined;
  return typeof v === 'string' && v.length > 0 && v.length <= max ? v : undefined;
}

/** A link to the same page with some query parameters changed (empty ones dropped). */
export function withQuery(path: string, params: Record<string, string | number | null | undefined>): string {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') s.set(k, String(v));
  const t = s.toString();
  return t ? `${path}?${t}` : path;
}
