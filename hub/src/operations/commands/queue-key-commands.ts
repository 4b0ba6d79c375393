import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { commandSha256, encodeEnvelope, KEY_COMMAND_REASONS, MESSAGE_TYPES, subjects, URGENT_KEY_COMMAND_ACTIONS, type KeyCommand, type KeyUsage } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, type AuditInput } from '../../audit/audit-log';
import { notifyOutbox } from '../../store/queries/outbox';
import { commandHolders, commandVersions, insertCommandOutbox, insertKeyCommands, type CommandVersion } from '../../store/queries/key-commands';
import { commandSignerFor } from './command-signer';

/**
 * What a lifecycle change asks of every site that holds a key version.
 * Other operations call `queueKeyCommands` inside their own transaction; it
 * records one command per (listener, target) holding the version, signs and
 * queues it (compromise and destroy on the urgent lane), and writes their
 * audit events.
 *
 * Rule: a site "holds or was sent" a version while it has a distribution of
 * it that did not fail, was not superseded and was not destroyed (a package
 * in flight may still import: the command follows it; the site carries out a
 * command for a version it does not hold as `absent`, and for compromise and
 * destroy remembers the version so that the package is refused when it
 * arrives). Commands, outbox rows and audit events commit with the caller's
 * change or not at all. compromise and destroy never expire; the others
 * expire after COMMAND_TTL_SECONDS, like packages.
 */
export type KeyCommandAction = 'suspend' | 'resume' | 'deactivate' | 'compromise' | 'destroy';

export interface KeyCommandRequest {
  keyVersionId: string;
  action: KeyCommandAction;
  /** Only these sites (e.g. a site removed from a distribution policy); default: every site that holds or was sent the version. */
  destinations?: Array<{ listenerId: string; target: string }>;
  /** Free text for the audit (never key material). */
  reason?: string;
  /** Why, as the site sees it (on the wire); default 'operator'. */
  reasonCode?: (typeof KEY_COMMAND_REASONS)[number];
}

export interface QueuedKeyCommands {
  commandIds: string[];
  /** How many (listener, target) pairs were addressed. */
  sites: number;
}

/** How long a suspend, resume or deactivate stays valid; a site that comes back later gets it again from the re-send job. */
export const COMMAND_TTL_SECONDS = 7 * 24 * 3600;

interface Planned {
  request: KeyCommandRequest;
  payload: KeyCommand;
  urgent: boolean;
}

export async function queueKeyCommands(m: EntityManager, requests: KeyCommandRequest[], actor: string): Promise<QueuedKeyCommands> {
  if (requests.length === 0) return { commandIds: [], sites: 0 };
  const versionIds = [...new Set(requests.map((r) => r.keyVersionId))];
  const versions = new Map((await commandVersions(m, versionIds)).map((v) => [v.version_id, v]));
  const missing = versionIds.find((id) => !versions.has(id));
  if (missing) throw new KeyhubError('KEY_NOT_FOUND', `no key version ${missing}`);
  const needHolders = requests.filter((r) => !r.destinations).map((r) => r.keyVersionId);
  const holders = needHolders.length ? await commandHolders(m, needHolders) : [];

  const now = new Date();
  const planned: Planned[] = [];
  for (const request of requests) {
    const sites = request.destinations ?? holders.filter((h) => h.key_version_id === request.keyVersionId).map((h) => ({ listenerId: h.listener_id, target: h.target }));
    for (const site of dedupe(sites)) planned.push(plan(request, versions.get(request.keyVersionId)!, site, now));
  }
  if (planned.length === 0) return { commandIds: [], sites: 0 };

  const signer = await commandSignerFor(m);
  const envelopes = await signer.signBatch(planned.map((p) => p.payload));
  const commandRows: unknown[][] = [];
  const outboxRows: unknown[][] = [];
  envelopes.forEach((envelope, i) => {
    const { request, payload, urgent } = planned[i];
    const bytes = Buffer.from(encodeEnvelope(envelope));
    const subject = urgent ? subjects.urgent(payload.listenerId) : subjects.toListener(payload.listenerId, 'command');
    commandRows.push([
      payload.id,
      request.keyVersionId,
      payload.listenerId,
      payload.target,
      payload.action,
      urgent,
      'pending',
      subject,
      bytes,
      Buffer.from(commandSha256(bytes), 'hex'),
      request.reason ?? null,
      actor,
      now,
      now,
    ]);
    outboxRows.push([subject, payload.id, bytes, urgent ? 1 : 0]);
  });
  await insertKeyCommands(m, commandRows);
  await insertCommandOutbox(m, outboxRows);
  await appendAudit(m, auditEvents(planned, actor));
  await notifyOutbox(m);
  return { commandIds: planned.map((p) => p.payload.id), sites: planned.length };
}

/**
 * One event per request (key version and action), naming every command and
 * site: a compromise at 1,000 sites is one event, not 1,000 (each event is
 * hashed and chained under the audit lock, which every writer waits for).
 */
function auditEvents(planned: Planned[], actor: string): AuditInput[] {
  const byRequest = new Map<KeyCommandRequest, Planned[]>();
  for (const p of planned) byRequest.set(p.request, [...(byRequest.get(p.request) ?? []), p]);
  return [...byRequest.entries()].map(([request, items]) => ({
    actor,
    action: 'key_command.queued',
    subject: `key:${items[0].payload.key.name}`,
    details: {
      command: request.action,
      version: items[0].payload.key.version,
      urgent: items[0].urgent,
      ...(request.reason ? { reason: request.reason } : {}),
      commandIds: items.map((p) => p.payload.id),
      sites: items.map((p) => `${p.payload.listenerId}/${p.payload.target}`),
    },
  }));
}

function plan(request: KeyCommandRequest, v: CommandVersion, site: { listenerId: string; target: string }, now: Date): Planned {
  const urgent = URGENT_KEY_COMMAND_ACTIONS.has(request.action);
  const payload: KeyCommand = {
    type: MESSAGE_TYPES.keyCommand,
    id: randomUUID(),
    listenerId: site.listenerId,
    target: site.target,
    issuedAt: now.toISOString(),
    ...(urgent ? {} : { expiresAt: new Date(now.getTime() + COMMAND_TTL_SECONDS * 1000).toISOString() }),
    action: request.action,
    reason: request.reasonCode ?? 'operator',
    key: { id: v.key_id, name: v.name, version: Number(v.version), kcv: v.kcv, usages: v.usages as KeyUsage[] },
  };
  return { request, payload, urgent };
}

function dedupe(sites: Array<{ listenerId: string; target: string }>): Array<{ listenerId: string; target: string }> {
  const seen = new Map<string, { listenerId: string; target: string }>();
  for (const s of sites) seen.set(`${s.listenerId}/${s.target}`, s);
  return [...seen.values()];
}
