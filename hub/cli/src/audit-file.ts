import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createPublicKey } from 'node:crypto';
import type { z } from 'zod';
import {
  exportLine,
  fingerprintsEqual,
  publicKeyFingerprint,
  witnessLine,
  type exportHeaderLine,
  type ExportLine,
  type ExportRange,
  type StoredAuditEvent,
  type StoredCheckpoint,
  type witnessHeaderLine,
} from '@keyhub/protocol';
import { CliError } from './errors';

/*
 * The audit export file (format in protocol/src/audit/export-format.ts) and
 * a site's witness copy, read and verified here with no database and no HSM
 * (audit-export.ts writes the export from the API).
 */

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
  /** A range export (version 3): where its events start and whether the ledger went on after them. */
  range?: ExportRange;
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
    ...(header.range ? { range: header.range } : {}),
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
