import type { api } from '@keyhub/protocol';
import type { SiteKeyRow } from '../../store/queries/site-lifecycle';

/** A site key row as the API shows it. */
export function siteKeyView(r: SiteKeyRow): api.SiteKeyView {
  return { keyId: r.key_id, keyName: r.key_name, keyVersionId: r.key_version_id, version: r.version, target: r.target, state: r.state, heldElsewhere: r.held_elsewhere };
}

/** For the audit: counts and the versions, never key material (ids and KCV-free). */
export function siteKeysSummary(rows: SiteKeyRow[]): Record<string, string | number> {
  const versions = [...new Set(rows.map((r) => r.key_version_id))];
  return { keyVersions: versions.length, entries: rows.length, keyVersionIds: versions.slice(0, 200).join(',') + (versions.length > 200 ? ',…' : '') };
}
