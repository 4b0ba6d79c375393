import type { api } from '@keyhub/protocol';
import type { OperatorRow } from '../../store/queries/operators';

export function operatorView(o: OperatorRow): api.OperatorView {
  return {
    id: o.id,
    name: o.name,
    roles: o.roles as api.Role[],
    state: o.state,
    createdAt: o.created_at.toISOString(),
    createdBy: o.created_by,
    revokedAt: o.revoked_at ? o.revoked_at.toISOString() : null,
    activeTokens: o.active_tokens,
  };
}
