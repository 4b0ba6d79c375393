/**
 * Drift: what a site should hold against what its signed inventory says it
 * holds. Pure; the hub narrows the comparison to candidate rows in SQL (one
 * set-based join over every inventory) and classifies them here.
 *
 * What "should hold" means, per key version state (NIST SP 800-57 states):
 * - active: present and usable;
 * - suspended, deactivated, compromised: if present, with its usages off
 *   (deactivated: at least its protecting usages; a target may also have
 *   destroyed it, which is not drift; a PKCS#11 target keeps a compromised
 *   key with every usage off, listener/src/targets/pkcs11-lifecycle.ts);
 * - destroyed (or destroyed at this site): absent;
 * - pre-activation: no expectation (it is not distributed).
 * The same rules hold for keystore, cloud and TR-31 targets (issue 12), whose
 * listeners report what each target's own index says it holds: a keystore or
 * payment HSM has no usage flags, so suspend, deactivate and compromise
 * REMOVE the entry there (listener/src/targets/TRANSIT.md), which "if
 * present" allows; an entry still there for such a version is usable by
 * whoever reads the file, and is drift. A cloud disables the version
 * (reported 'disabled'), which meets "usages off". So no rule per kind of
 * target is needed (test/src/unit/target-inventory.test.ts holds them to it).
 * Only distributions settled before the inventory was taken count: a key in
 * flight (queued, sent, failed) or confirmed after the snapshot is neither
 * missing nor extra.
 */

export type DriftKind = 'missing' | 'extra' | 'kcv_mismatch' | 'state_mismatch';
export const DRIFT_KINDS: readonly DriftKind[] = ['missing', 'extra', 'kcv_mismatch', 'state_mismatch'];

export type ReportedState = 'active' | 'disabled';

export interface ExpectedItem {
  keyId: string;
  version: number;
  kcv: string;
  versionState: string;
  /** A destroy command for this version was confirmed at this site (the distribution is 'destroyed'): it must be gone here, whatever the version's state elsewhere. */
  destroyedHere: boolean;
  /** Settled before the inventory was taken (see above). */
  settled: boolean;
  keyVersionId: string;
  distributionId: string;
}

export interface ReportedItem {
  objectId: string;
  keyId: string | null;
  version: number | null;
  label: string;
  kcv: string | null;
  state: ReportedState;
}

export interface DriftCandidate {
  listenerId: string;
  target: string;
  expected: ExpectedItem | null;
  reported: ReportedItem | null;
}

export interface DriftFinding {
  listenerId: string;
  target: string;
  /** Identity of the item at the site: `<keyId>/v<version>`, or `object:<objectId>` for an object without a Keyhub identity. */
  item: string;
  kind: DriftKind;
  keyId: string | null;
  version: number | null;
  keyVersionId: string | null;
  distributionId: string | null;
  objectId: string | null;
  label: string | null;
  expectedKcv: string | null;
  reportedKcv: string | null;
  expectedState: string | null;
  reportedState: ReportedState | null;
}

export interface Expectation {
  presence: 'present' | 'absent' | 'any';
  /** Usable (true), usages off (false), or no expectation (null). */
  enabled: boolean | null;
}

export function expectationFor(versionState: string): Expectation {
  switch (versionState) {
    case 'active':
      return { presence: 'present', enabled: true };
    case 'suspended':
    case 'deactivated':
    case 'compromised':
      return { presence: 'any', enabled: false };
    case 'destroyed':
      return { presence: 'absent', enabled: null };
    default:
      return { presence: 'any', enabled: null };
  }
}

export function itemKey(keyId: string | null, version: number | null, objectId: string): string {
  return keyId !== null && version !== null ? `${keyId}/v${version}` : `object:${objectId}`;
}

/** The findings for one candidate row (at most one per kind; usually none or one). */
export function classifyDrift(c: DriftCandidate): DriftFinding[] {
  const { expected: e, reported: r } = c;
  if (!e && !r) return [];
  const base = (kind: DriftKind): DriftFinding => ({
    listenerId: c.listenerId,
    target: c.target,
    item: e ? itemKey(e.keyId, e.version, '') : itemKey(r!.keyId, r!.version, r!.objectId),
    kind,
    keyId: e?.keyId ?? r?.keyId ?? null,
    version: e?.version ?? r?.version ?? null,
    keyVersionId: e?.keyVersionId ?? null,
    distributionId: e?.distributionId ?? null,
    objectId: r?.objectId ?? null,
    label: r?.label ?? null,
    expectedKcv: e?.kcv ?? null,
    reportedKcv: r?.kcv ?? null,
    expectedState: e ? (e.destroyedHere ? 'destroyed' : e.versionState) : null,
    reportedState: r?.state ?? null,
  });
  if (!r) return e!.settled && !e!.destroyedHere && expectationFor(e!.versionState).presence === 'present' ? [base('missing')] : [];
  if (!e) return [base('extra')];
  if (!e.settled) return [];
  const want = e.destroyedHere ? expectationFor('destroyed') : expectationFor(e.versionState);
  if (want.presence === 'absent') return [base('state_mismatch')];
  const out: DriftFinding[] = [];
  // No KCV in the report: the listener cannot vouch for the object's value (documented in listener/src/inventory), which is not a mismatch.
  if (r.kcv !== null && r.kcv !== e.kcv) out.push(base('kcv_mismatch'));
  if (want.enabled !== null && want.enabled !== (r.state === 'active')) out.push(base('state_mismatch'));
  return out;
}

/**
 * The whole comparison for sites whose inventories are in: expected and
 * reported items joined on (listener, target, key, version). What the SQL
 * scan does set-based; kept here as the reference the unit tests hold it to.
 */
export function compareInventories(
  expected: ReadonlyArray<{ listenerId: string; target: string; item: ExpectedItem }>,
  reported: ReadonlyArray<{ listenerId: string; target: string; item: ReportedItem }>,
): DriftFinding[] {
  const key = (l: string, t: string, i: string) => `${l}\u0000${t}\u0000${i}`;
  const rows = new Map<string, DriftCandidate>();
  for (const x of expected) rows.set(key(x.listenerId, x.target, itemKey(x.item.keyId, x.item.version, '')), { listenerId: x.listenerId, target: x.target, expected: x.item, reported: null });
  for (const x of reported) {
    const k = key(x.listenerId, x.target, itemKey(x.item.keyId, x.item.version, x.item.objectId));
    const row = rows.get(k);
    if (row && !row.reported) row.reported = x.item;
    // Two objects with one Keyhub identity: the second is extra (a site should never hold copies).
    else rows.set(row ? `${k}\u0000${x.item.objectId}` : k, { listenerId: x.listenerId, target: x.target, expected: null, reported: x.item });
  }
  return [...rows.values()].flatMap(classifyDrift);
}

/** Counts per kind, every kind named (metrics read a missing kind as 0). */
export function countByKind(findings: ReadonlyArray<{ kind: DriftKind }>): Record<DriftKind, number> {
  const counts: Record<DriftKind, number> = { missing: 0, extra: 0, kcv_mismatch: 0, state_mismatch: 0 };
  for (const f of findings) counts[f.kind]++;
  return counts;
}
