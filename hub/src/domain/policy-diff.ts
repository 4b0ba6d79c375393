/**
 * What a distribution policy (placement) asks for, against what it has
 * already placed: the pure core of the reconcile job.
 *
 * Rules:
 * - The version a policy wants is the key's current version when it covers
 *   future versions, else the version it was made (or last approved) for.
 *   A sensitive key under dual control and a policy without future versions
 *   still *looks at* the current version: a newer one is a widening that
 *   needs a new approval, never a silent push.
 * - Under dual control a site is covered when it was approved, or when the
 *   policy was approved as covering sites that match later. Anything not
 *   covered becomes a widening request (the sites and version it would add).
 * - A site the policy placed the key at that no longer matches (policy
 *   edited, label changed) is removed, unless another policy of the same key
 *   still wants that site.
 */

export interface Site {
  listenerId: string;
  target: string;
}

export interface PlacementRule {
  futureVersions: boolean;
  futureSites: boolean;
  /** The key is sensitive and the approval policy for placements is on. */
  dualControl: boolean;
  /** The version the policy was made or last approved for. */
  version: number;
  /** Sites approved so far under dual control ("listener/target"); null when not under dual control. */
  approvedSites: ReadonlySet<string> | null;
}

export interface DiffInput {
  rule: PlacementRule;
  currentVersion: number;
  /** Sites the policy matches now (ids and selector, targets expanded). */
  desired: readonly Site[];
  /** Sites where the wanted version already has a distribution (any state but destroyed there): nothing to queue there. */
  holding: ReadonlySet<string>;
  /** What this policy placed so far, per version. */
  placed: ReadonlyArray<Site & { version: number }>;
  /** Sites other policies of the same key want: not removed when this one lets go. */
  wantedElsewhere: ReadonlySet<string>;
}

export interface PolicyDiff {
  version: number;
  /** Sites to queue the version for. */
  push: Site[];
  /** Sites that hold the version already: recorded as placed by this policy. */
  adopt: Site[];
  /** Sites (and the version) that need an approval first; null when nothing does. */
  widen: { version: number; sites: Site[] } | null;
  /** Placed versions at sites the policy no longer wants: destroyed. */
  remove: Array<Site & { version: number }>;
}

export const siteKey = (s: Site): string => `${s.listenerId}/${s.target}`;

/** The version the policy is after (see the rules above). */
export function wantedVersion(rule: PlacementRule, currentVersion: number): number {
  return rule.futureVersions || rule.dualControl ? currentVersion : rule.version;
}

export function diffPlacement(input: DiffInput): PolicyDiff {
  const { rule, desired } = input;
  const version = wantedVersion(rule, input.currentVersion);
  const versionCovered = !rule.dualControl || rule.futureVersions || version === rule.version;
  const siteCovered = (s: Site): boolean => !rule.dualControl || rule.futureSites || (rule.approvedSites?.has(siteKey(s)) ?? false);
  const push: Site[] = [];
  const adopt: Site[] = [];
  const widening: Site[] = [];
  const placedHere = new Set(input.placed.filter((p) => p.version === version).map(siteKey));
  for (const s of uniqueSites(desired)) {
    if (!versionCovered || !siteCovered(s)) {
      // Already placed under an earlier approval: covered by that approval, not a widening.
      if (!placedHere.has(siteKey(s))) widening.push(s);
      continue;
    }
    if (placedHere.has(siteKey(s))) continue;
    (input.holding.has(siteKey(s)) ? adopt : push).push(s);
  }
  const wanted = new Set(desired.map(siteKey));
  const remove = input.placed.filter((p) => !wanted.has(siteKey(p)) && !input.wantedElsewhere.has(siteKey(p)));
  return { version, push, adopt, widen: widening.length ? { version, sites: widening } : null, remove };
}

function uniqueSites(sites: readonly Site[]): Site[] {
  const seen = new Set<string>();
  return sites.filter((s) => {
    const k = siteKey(s);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
