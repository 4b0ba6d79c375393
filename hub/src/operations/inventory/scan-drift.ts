import { injectable } from 'tsyringe';
import { appendAudit, type AuditInput } from '../../audit/audit-log';
import { HubContext } from '../../context';
import { classifyDrift, countByKind, type DriftCandidate, type DriftFinding, type DriftKind, type ReportedState } from '../../domain/drift';
import { driftCandidates, lockDriftScans, resolveFindings, upsertFindings, type DriftCandidateRow } from '../../store/queries/drift';

export interface DriftScanResult {
  /** Findings open after the scan, per kind, for the scanned listeners. */
  counts: Record<DriftKind, number>;
  /** Findings first seen in this scan: what healing acts on. */
  fresh: DriftFinding[];
  resolved: number;
}

/**
 * Compares what the scanned sites should hold with their signed inventories
 * (domain/drift.ts) and keeps drift_findings current. Rules: the audit hears
 * of a finding once, when it is first seen (`drift.detected`), and once when
 * it is gone (`drift.resolved`); a scan that sees the same drift again only
 * moves its last sighting. Scans are serialized across replicas by an
 * advisory lock, so two scans never disagree about what is new.
 */
@injectable()
export class ScanDrift {
  constructor(private readonly ctx: HubContext) {}

  /** `listenerIds`: scan these sites only; null: every site with an inventory. */
  async execute(listenerIds: string[] | null): Promise<DriftScanResult> {
    return this.ctx.ds.transaction(async (m) => {
      await lockDriftScans(m);
      const seenAt = new Date();
      const rows = await driftCandidates(m, listenerIds);
      const findings = dedupe(rows.map(toCandidate).flatMap(classifyDrift));
      const inserted = await upsertFindings(m, findings, seenAt);
      const resolved = await resolveFindings(m, listenerIds, seenAt);
      const isNew = new Set(inserted.map((r) => `${r.listener_id}\u0000${r.target}\u0000${r.item}\u0000${r.kind}`));
      const fresh = findings.filter((f) => isNew.has(`${f.listenerId}\u0000${f.target}\u0000${f.item}\u0000${f.kind}`));
      const audit: AuditInput[] = fresh.map((f) => ({
        actor: 'hub',
        action: 'drift.detected',
        subject: `listener:${f.listenerId}`,
        details: {
          kind: f.kind,
          target: f.target,
          item: f.item,
          ...(f.version !== null ? { version: f.version } : {}),
          ...(f.label !== null ? { label: f.label } : {}),
          ...(f.expectedKcv !== null ? { expectedKcv: f.expectedKcv } : {}),
          ...(f.reportedKcv !== null ? { reportedKcv: f.reportedKcv } : {}),
          ...(f.expectedState !== null ? { expectedState: f.expectedState } : {}),
          ...(f.reportedState !== null ? { reportedState: f.reportedState } : {}),
        },
      }));
      for (const r of resolved) audit.push({ actor: 'hub', action: 'drift.resolved', subject: `listener:${r.listener_id}`, details: { kind: r.kind, target: r.target, item: r.item } });
      await appendAudit(m, audit);
      return { counts: countByKind(findings), fresh, resolved: resolved.length };
    });
  }
}

function toCandidate(r: DriftCandidateRow): DriftCandidate {
  return {
    listenerId: r.listener_id,
    target: r.target,
    expected:
      r.e_key_id === null
        ? null
        : {
            keyId: r.e_key_id,
            version: r.e_version!,
            kcv: r.e_kcv!,
            versionState: r.vstate!,
            destroyedHere: r.dstate === 'destroyed',
            settled: r.settled === true,
            keyVersionId: r.key_version_id!,
            distributionId: r.distribution_id!,
          },
    reported: r.object_id === null ? null : { objectId: r.object_id, keyId: r.r_key_id, version: r.r_version, label: r.label ?? '', kcv: r.r_kcv, state: r.r_state as ReportedState },
  };
}

/** One finding per (site, item, kind): two planted copies of one identity are one finding. */
function dedupe(findings: DriftFinding[]): DriftFinding[] {
  const seen = new Map<string, DriftFinding>();
  for (const f of findings) seen.set(`${f.listenerId}\u0000${f.target}\u0000${f.item}\u0000${f.kind}`, f);
  return [...seen.values()];
}
