import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { keyByName, versionsOfKey, type LifecycleVersionRow } from '../../store/queries/key-lifecycle';

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

/** One key with every version: states, KCVs and lifecycle dates. Rule: metadata only, never material. */
@injectable()
export class ShowKey {
  constructor(private readonly ctx: HubContext) {}

  async execute(name: string): Promise<api.KeyDetail> {
    const k = await keyByName(this.ctx.ds, name);
    if (!k) throw new KeyhubError('KEY_NOT_FOUND', `no key named "${name}"`);
    const versions = await versionsOfKey(this.ctx.ds, k.id);
    const current = versions.find((v) => v.version === k.current_version);
    return {
      key: {
        id: k.id,
        name: k.name,
        algorithm: k.algorithm,
        state: k.state,
        currentVersion: k.current_version,
        kcv: current?.kcv ?? null,
        usages: k.usages,
        exportable: k.exportable,
        sensitive: k.sensitive,
        targetKinds: k.target_kinds,
        allowClearImport: k.allow_clear_import,
        createdBy: k.created_by,
        createdAt: new Date(k.created_at).toISOString(),
      },
      lifecycle: { cryptoperiodSeconds: k.cryptoperiod_seconds, rotateEverySeconds: k.rotate_every_seconds, graceSeconds: k.grace_seconds },
      versions: versions.map(versionView),
    };
  }
}

function versionView(v: LifecycleVersionRow): api.KeyVersionView {
  return {
    id: v.id,
    version: v.version,
    kcv: v.kcv,
    state: v.state as api.KeyStateName,
    createdAt: new Date(v.created_at).toISOString(),
    activateAt: new Date(v.activate_at).toISOString(),
    deactivateAt: iso(v.deactivate_at),
    stateChangedAt: iso(v.state_changed_at),
    stateReason: v.state_reason,
    compromisedAt: iso(v.compromised_at),
    destroyedAt: iso(v.destroyed_at),
  };
}
