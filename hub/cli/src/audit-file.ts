import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createPublicKey } from 'node:crypto';
import type { z } from 'zod';
import { api, AUDIT_EXPORT_VERSION, exportLine, publicKeyFingerprint, type AuditDetails, type exportHeaderLine, type ExportLine, type StoredAuditEvent, type StoredCheckpoint } from '@keyhub/protocol';
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
    for (const cp of cps.checkpoints) await out.line({ type: 'checkpoint', seq: cp.seq, hash: cp.hash, signature: cp.signature });
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
      try {
        parsed = exportLine.safeParse(JSON.parse(text));
      } catch {
        throw new CliError('AUDIT_CHAIN_BROKEN', `${file} line ${n} is not JSON`, { line: n });
      }
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
      checkpoints.push({ seq: record.seq, hash: record.hash, signature: record.signature });
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
        yield { seq: record.seq, at: Number.isNaN(at.getTime()) ? new Date(0) : at, actor: record.actor, action: record.action, subject: record.subject, details: record.details, prevHash: record.prevHash, hash: record.hash };
      }
    },
  };
}
