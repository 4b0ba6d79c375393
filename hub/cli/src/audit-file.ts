import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createPublicKey } from 'node:crypto';
import type { z } from 'zod';
import {
  api,
  AUDIT_EXPORT_VERSION,
  exportLine,
  fingerprintsEqual,
  publicKeyFingerprint,
  witnessLine,
  type AuditDetails,
  type exportHeaderLine,
  type ExportLine,
  type StoredAuditEvent,
  type StoredCheckpoint,
  type witnessHeaderLine,
} from '@keyhub/protocol';
import type { HubClient } from './client';
import { CliError } from './errors';

/*
 * The audit export file (format in protocol/src/audit/export-format.ts):
 * written from the API, read and verified here with no database and no HSM.
 */

export interface ExportSummary {
  file: string;
  fingerprint: string;
  events: number;
  checkpoints: number;
  head?: { seq: number; hash: string };
}

/**
 * A write stream reports failure (cannot create the file, disk full) by an
 * event, possibly while we wait on the database; remember it and raise it at
 * the next write, where the caller can handle it.
 */
class ExportWriter {
  private readonly out: WriteStream;
  private failure: unknown;

  constructor(private readonly file: string) {
    this.out = createWriteStream(file, { encoding: 'utf8' });
    this.out.on('error', (err) => (this.failure ??= err));
  }

  async line(value: unknown): Promise<void> {
    this.check();
    if (!this.out.write(`${JSON.stringify(value)}\n`)) await this.settle(once(this.out, 'drain'));
  }

  async end(): Promise<void> {
    this.check();
    const finished = once(this.out, 'finish');
    this.out.end();
    await this.settle(finished);
  }

  destroy(): void {
    this.out.destroy();
  }

  private async settle(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      this.failure ??= err;
    }
    this.check();
  }

  private check(): void {
    if (this.failure !== undefined) throw new CliError('INPUT_INVALID', `cannot write audit export ${this.file}`);
  }
}

/** Writes the chain as the hub's API hands it out, page by page, so memory does not grow with it. */
export async function writeAuditExport(c: HubClient, file: string): Promise<ExportSummary> {
  // Checkpoints before events: the chain only grows, so every checkpoint read now is covered by the events read after.
  const cps = await c.get('/v1/audit/checkpoints', api.checkpointList);
  const signingKey = Buffer.from(cps.signingKey, 'base64');
  const fingerprint = publicKeyFingerprint(signingKey);
  const out = new ExportWriter(file);
  let events = 0;
  let head: ExportSummary['head'];
  try {
    await out.line({ type: 'header', version: AUDIT_EXPORT_VERSION, hubSigningKey: cps.signingKey, fingerprint });
    for await (const e of apiAuditEvents(c)) {
      await out.line({ type: 'event', seq: e.seq, at: e.at.toISOString(), actor: e.actor, action: e.action, subject: e.subject, details: e.details, prevHash: e.prevHash, hash: e.hash });
      events++;
      head = { seq: e.seq, hash: e.hash };
    }
    for (const cp of cps.checkpoints) await out.line({ type: 'checkpoint', ...cp });
    await out.end();
  } finally {
    out.destroy();
  }
  return { file, fingerprint, events, checkpoints: cps.checkpoints.length, head };
}

/** The chain through the API, oldest first, a page at a time. */
export async function* apiAuditEvents(c: HubClient): AsyncGenerator<StoredAuditEvent> {
  let after = 0;
  for (;;) {
    const page = await c.get(`/v1/audit/events?after=${after}&limit=5000`, api.auditEventsPage);
    for (const e of page.events) yield { seq: e.seq, at: new Date(e.at), actor: e.actor, action: e.action, subject: e.subject, details: e.details as AuditDetails, prevHash: e.prevHash, hash: e.hash };
    if (page.next === null) return;
    after = page.next;
  }
}

async function* exportLines(file: string): AsyncGenerator<{ line: number; record: ExportLine }> {
  const input = createReadStream(file, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (err: NodeJS.ErrnoException) => reject(new CliError('INPUT_INVALID', `cannot read audit export ${file} (${err.code ?? 'error'})`)));
  });
  await opened;
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const text of lines) {
      n++;
      if (text.trim() === '') continue;
      let parsed: ReturnType<typeof exportLine.safeParse>;
      let json: unknown;
      try {
        json = JSON.parse(text);
        parsed = exportLine.safeParse(json);
      } catch {
        throw new CliError('AUDIT_CHAIN_BROKEN', `${file} line ${n} is not JSON`, { line: n });
      }
      // The schema drops `__proto__` members (of details) without a word: such a line would verify with content its hash does not cover (found by test/src/fuzz).
      if (hasProtoMember(json)) throw new CliError('AUDIT_CHAIN_BROKEN', `${file} line ${n} carries a __proto__ member, which no export has`, { line: n });
      if (!parsed.success) throw new CliError('AUDIT_CHAIN_BROKEN', `${file} line ${n} is not a valid export record`, { line: n });
      yield { line: n, record: parsed.data };
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('INPUT_INVALID', `cannot read audit export ${file}`);
  } finally {
    lines.close();
    input.destroy();
  }
}

/** True when a parsed JSON value has an own `__proto__` member at any depth (iterative: lines may nest deeply). */
function hasProtoMember(value: unknown): boolean {
  const stack = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Object.prototype.hasOwnProperty.call(v, '__proto__')) return true;
    for (const member of Object.values(v)) stack.push(member);
  }
  return false;
}

export interface AuditExport {
  signingKey: Buffer;
  fingerprint: string;
  checkpoints: StoredCheckpoint[];
  /** A second pass over the file, so memory does not grow with the chain. */
  events(): AsyncGenerator<StoredAuditEvent>;
}

/**
 * Validates the file's structure and collects header and checkpoints; the
 * events are streamed later by `events()`. Structural damage is reported as a
 * broken chain, since to an auditor that is what it is.
 */
export async function readAuditExport(file: string): Promise<AuditExport> {
  let header: z.infer<typeof exportHeaderLine> | undefined;
  const checkpoints: StoredCheckpoint[] = [];
  for await (const { line, record } of exportLines(file)) {
    if (!header) {
      if (record.type !== 'header') throw new CliError('AUDIT_CHAIN_BROKEN', `${file} does not start with an export header`, { line });
      header = record;
    } else if (record.type === 'header') {
      throw new CliError('AUDIT_CHAIN_BROKEN', `${file} line ${line}: a second header`, { line });
    } else if (record.type === 'checkpoint') {
      checkpoints.push({ seq: record.seq, hash: record.hash, signature: record.signature, at: record.at, prevSeq: record.prevSeq, prevDigest: record.prevDigest });
    }
  }
  if (!header) throw new CliError('AUDIT_CHAIN_BROKEN', `${file} is empty`);
  const signingKey = Buffer.from(header.hubSigningKey, 'base64');
  try {
    createPublicKey({ key: signingKey, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CliError('AUDIT_CHAIN_BROKEN', `${file}: the header's hub signing key is not a public key (${String(err)})`);
  }
  const fingerprint = publicKeyFingerprint(signingKey);
  if (header.fingerprint !== fingerprint) throw new CliError('AUDIT_CHAIN_BROKEN', `${file}: the header's fingerprint does not belong to its signing key`);
  return {
    signingKey,
    fingerprint,
    checkpoints,
    async *events() {
      for await (const { record } of exportLines(file)) {
        if (record.type !== 'event') continue;
        const at = new Date(record.at);
        // An unparseable time cannot reproduce the hash; let the chain check name the event.
        yield {
          seq: record.seq,
          at: Number.isNaN(at.getTime()) ? new Date(0) : at,
          actor: record.actor,
          action: record.action,
          subject: record.subject,
          details: record.details,
          prevHash: record.prevHash,
          hash: record.hash,
        };
      }
    },
  };
}

export interface WitnessCopy {
  file: string;
  listenerId: string;
  /** The hub key the site accepted under its pinned fingerprint: the key every checkpoint is checked with. */
  hubKey: Buffer;
  fingerprint: string;
  checkpoints: StoredCheckpoint[];
}

/**
 * A site's checkpoint copy (`keyhub-listener checkpoints export`). Its
 * header's hub key must carry the fingerprint the site pinned; its
 * checkpoints are checked against that key by the verifier, not here.
 */
export async function readWitnessCopy(file: string): Promise<WitnessCopy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError('INPUT_INVALID', `cannot read witness copy ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let header: z.infer<typeof witnessHeaderLine> | undefined;
  const checkpoints: StoredCheckpoint[] = [];
  let n = 0;
  for (const line of text.split('\n')) {
    n++;
    if (line.trim() === '') continue;
    let parsed: ReturnType<typeof witnessLine.safeParse>;
    try {
      parsed = witnessLine.safeParse(JSON.parse(line));
    } catch {
      throw new CliError('INPUT_INVALID', `${file} line ${n} is not JSON`, { line: n });
    }
    if (!parsed.success) throw new CliError('INPUT_INVALID', `${file} line ${n} is not a witness record`, { line: n });
    const r = parsed.data;
    if (!header) {
      if (r.type !== 'witness') throw new CliError('INPUT_INVALID', `${file} does not start with a witness header`, { line: n });
      header = r;
    } else if (r.type === 'witness') {
      throw new CliError('INPUT_INVALID', `${file} line ${n}: a second header`, { line: n });
    } else {
      checkpoints.push({ seq: r.payload.seq, hash: r.payload.hash, signature: r.signature, at: r.payload.at, prevSeq: r.payload.prevSeq, prevDigest: r.payload.prevDigest });
    }
  }
  if (!header) throw new CliError('INPUT_INVALID', `${file} is empty`);
  const hubKey = Buffer.from(header.hubSigningKey, 'base64');
  let fingerprint: string;
  try {
    createPublicKey({ key: hubKey, format: 'der', type: 'spki' });
    fingerprint = publicKeyFingerprint(hubKey);
  } catch {
    throw new CliError('INPUT_INVALID', `${file}: the header's hub key is not a public key`);
  }
  if (!fingerprintsEqual(fingerprint, header.hubFingerprint))
    throw new CliError('HUB_KEY_NOT_PINNED', `${file}: the hub key in the header (${fingerprint}) is not the one site ${header.listenerId} pinned (${header.hubFingerprint})`);
  return { file, listenerId: header.listenerId, hubKey, fingerprint, checkpoints };
}
