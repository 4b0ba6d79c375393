import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { api } from '@keyhub/protocol';
import { appendAudit } from '../../audit/audit-log';
import { mintApiToken } from '../../crypto/api-tokens';
import { SYSTEM_ACTORS } from '../../domain/principal';
import { countOperators, insertOperator } from '../../store/queries/operators';
import { insertToken } from '../../store/queries/tokens';

/**
 * The first admin, made by `keyhub init` when the hub has no operator at
 * all: every later operator is made through the API by an admin. Returns the
 * token once (the caller writes it to an owner-only file), or nothing when
 * operators exist already, so running init again mints nothing.
 */
export async function bootstrapAdmin(m: EntityManager, name: string, ttlSeconds: number): Promise<api.IssuedToken | undefined> {
  if ((await countOperators(m)) > 0) return undefined;
  const id = randomUUID();
  await insertOperator(m, { id, name, roles: ['admin'], createdBy: SYSTEM_ACTORS.init });
  const minted = mintApiToken();
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  await insertToken(m, { id: minted.id, operatorId: id, secretHash: minted.secretHash, roles: null, description: 'first admin, made by keyhub init', createdBy: SYSTEM_ACTORS.init, expiresAt });
  await appendAudit(m, [
    { actor: SYSTEM_ACTORS.init, action: 'operator.created', subject: `operator:${name}`, details: { operatorId: id, roles: 'admin' } },
    { actor: SYSTEM_ACTORS.init, action: 'token.created', subject: `token:${minted.id}`, details: { operator: name, expiresAt: expiresAt.toISOString() } },
  ]);
  return { id: minted.id, token: minted.token, operator: name, roles: null, expiresAt: expiresAt.toISOString() };
}
