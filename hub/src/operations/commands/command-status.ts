import { injectable } from 'tsyringe';
import type { api } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { HubContext } from '../../context';
import { commandStatusRows } from '../../store/queries/key-commands';
import { keyNameExists } from '../../store/queries/keys';

/**
 * Where the lifecycle commands of a key (or of every key) stand: per key
 * version and command, which sites confirmed it and which are outstanding.
 * Rule: a command counts as carried out at a site only when that site's
 * signed receipt, naming the command's hash, was applied (confirmed).
 */
@injectable()
export class CommandStatus {
  constructor(private readonly ctx: HubContext) {}

  async execute(keyName?: string): Promise<api.CommandStatusRowView[]> {
    if (keyName !== undefined && !(await keyNameExists(this.ctx.ds, keyName))) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${keyName}"`);
    const rows = await commandStatusRows(this.ctx.ds, keyName ?? null);
    const groups = new Map<string, api.CommandStatusRowView>();
    for (const r of rows) {
      // One queueing of a command for a version: the rows written together share their time.
      const k = `${r.key}/${r.version}/${r.action}/${r.created_at.toISOString()}`;
      let g = groups.get(k);
      if (!g) {
        g = { key: r.key, version: Number(r.version), action: r.action, confirmed: 0, outstanding: 0, failed: 0, sites: [] };
        groups.set(k, g);
      }
      if (r.state === 'confirmed') g.confirmed++;
      else if (r.state === 'failed') g.failed++;
      else g.outstanding++;
      g.sites.push({
        commandId: r.command_id,
        listener: r.listener_id,
        target: r.target,
        state: r.state,
        outcome: r.outcome,
        effect: r.effect,
        errorCode: r.error_code,
        attempts: Number(r.attempts),
        queuedAt: r.created_at.toISOString(),
        answeredAt: r.answered_at ? r.answered_at.toISOString() : null,
      });
    }
    return [...groups.values()];
  }
}
