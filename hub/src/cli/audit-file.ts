import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createPublicKey } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { publicKeyFingerprint } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { hubSigningKey, readAuditEvents, readCheckpoints } from '../audit/audit-store';
import type { StoredAuditEvent, StoredCheckpoint } from '../audit/verify-audit';

/*
 * The audit export: JSON lines, a header with the hub signing key, the events
 * in sequence order, then the checkpoints. Line-oriented so that it can be
 * streamed both ways and inspected with grep and jq.
 */

const headerLine = z.strictObject({ type: z.literal('header'), hubSigningKey: z.string().min(1), fingerprint: z.string() });
const eventLine = z.strictObject({
  type: z.literal('event'),
  seq: z.number().int(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  details: z.record(z.string(), z.json()),
  prevHash: z.string(),
  hash: z.string(),
});
const checkpointLine = z.strictObject({ type: z.literal('checkpoint'), seq: z.number().int(), hash: z.string(), signature: z.string() });
const exportLine = z.discriminatedUnion('type', [headerLine, eventLine, checkpointLine]);
type ExportLine = z.infer<typeof exportLine>;

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
    if (this.failure !== undefined) throw new KeyhubError('INPUT_INVALID', `cannot write audit export ${this.file}`, { cause: this.failure });
  }
}

export async function writeAuditExport(ds: DataSource, file: string): Promise<ExportSummary> {
  const signingKey = await hubSigningKey(ds);
  const fingerprint = publicKeyFingerprint(signingKey);
  // Checkpoints before events: the chain only grows, so every checkpoint read now is covered by the events read after.
  const checkpoints = await readCheckpoints(ds);
  const out = new ExportWriter(file);
  let events = 0;
  let head: ExportSummary['head'];
  try {
    await out.line({ type: 'header', hubSigningKey: signingKey.toString('base64'), fingerprint });
    for await (const e of readAuditEvents(ds)) {
      await out.line({ type: 'event', seq: e.seq, at: e.at.toISOString(), actor: e.actor, action: e.action, subject: e.subject, details: e.details, prevHash: e.prevHash, hash: e.hash });
      events++;
      head = { seq: e.seq, hash: e.hash };
    }
    for (const c of checkpoints) await out.line({ type: 'checkpoint', seq: c.seq, hash: c.hash, signature: c.signature });
    await out.end();
  } finally {
    out.destroy();
  }
  return { file, fingerprint, events, checkpoints: checkpoints.length, head };
}

async function* exportLines(file: string): AsyncGenerator<{ line: number; record: ExportLine }> {
  const input = createReadStream(file, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (err) => reject(new KeyhubError('INPUT_INVALID', `cannot read audit export ${file}`, { cause: err })));
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
        throw new KeyhubError('AUDIT_CHAIN_BROKEN', `${file} line ${n} is not JSON`, { details: { line: n } });
      }
      if (!parsed.success) throw new KeyhubError('AUDIT_CHAIN_BROKEN', `${file} line ${n} is not a valid export record`, { details: { line: n } });
      yield { line: n, record: parsed.data };
    }
  } catch (err) {
    if (err instanceof KeyhubError) throw err;
    throw new KeyhubError('INPUT_INVALID', `cannot read audit export ${file}`, { cause: err });
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
  let header: z.infer<typeof headerLine> | undefined;
  const checkpoints: StoredCheckpoint[] = [];
  for await (const { line, record } of exportLines(file)) {
    if (!header) {
      if (record.type !== 'header') throw new KeyhubError('AUDIT_CHAIN_BROKEN', `${file} does not start with an export header`, { details: { line } });
      header = record;
    } else if (record.type === 'header') {
      throw new KeyhubError('AUDIT_CHAIN_BROKEN', `${file} line ${line}: a second header`, { details: { line } });
    } else if (record.type === 'checkpoint') {
      checkpoints.push({ seq: record.seq, hash: record.hash, signature: record.signature });
    }
  }
  if (!header) throw new KeyhubError('AUDIT_CHAIN_BROKEN', `${file} is empty`);
  const signingKey = Buffer.from(header.hubSigningKey, 'base64');
  try {
    createPublicKey({ key: signingKey, format: 'der', type: 'spki' });
  } catch (err) {
    throw new KeyhubError('AUDIT_CHAIN_BROKEN', `${file}: the header's hub signing key is not a public key`, { cause: err });
  }
  const fingerprint = publicKeyFingerprint(signingKey);
  if (header.fingerprint !== fingerprint) throw new KeyhubError('AUDIT_CHAIN_BROKEN', `${file}: the header's fingerprint does not belong to its signing key`);
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
