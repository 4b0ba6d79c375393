import type { Command } from 'commander';
import { api, fingerprintsEqual, publicKeyFingerprint, verifyAuditLedger, type ExportRange, type LedgerVerification, type StoredAuditEvent, type StoredCheckpoint } from '@keyhub/protocol';
import { apiAuditEvents, closeRange, writeAuditExport } from '../audit-export';
import { readAuditExport, readWitnessCopy, type WitnessCopy } from '../audit-file';
import { resolveWindow, type RangeAsked } from '../audit-range';
import { client, globals } from '../context';
import { pinnedHubFingerprint } from '../credentials';
import { CliError } from '../errors';
import { printFields, printJson, printLine } from '../output';

interface VerifyReport extends LedgerVerification {
  source: string;
  /** The key the checkpoints were checked with: pinned by fingerprint, or the one the sites pinned. */
  fingerprint: string;
  trust: 'fingerprint' | 'witness';
  /** Events after the last checkpoint: linked by hashes but not yet covered by a signature. */
  unsigned: number;
  /** With --witness: the sites compared, and the events after the last checkpoint any of them holds (the window no site vouches for). */
  sites?: string[];
  unwitnessed?: number;
  /** A range (--from/--to, or a range export): what was asked and the window checked around it. */
  range?: ExportRange;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** What the data says: its signing key, checkpoints and events, from the hub's API or an export file. */
interface AuditSource {
  name: string;
  signingKey: Buffer;
  checkpoints: StoredCheckpoint[];
  events(): AsyncIterable<StoredAuditEvent>;
  range?: ExportRange;
}

/**
 * The key the checkpoints are checked with never comes from the data being
 * verified: whoever can rewrite the database or the file can also swap in a
 * key of their own and re-sign. It is the key the sites pinned (--witness:
 * their copies carry it), or the data's key only once it matches a
 * fingerprint known from elsewhere (--fingerprint or KEYHUB_HUB_FINGERPRINT).
 * One of the two is required.
 */
function trustedKey(source: AuditSource, pinned: string | undefined, witnesses: WitnessCopy[]): { key: Buffer; fingerprint: string; trust: VerifyReport['trust'] } {
  const dataFingerprint = publicKeyFingerprint(source.signingKey);
  if (witnesses.length) {
    const [first] = witnesses;
    for (const w of witnesses) {
      if (!w.hubKey.equals(first.hubKey)) throw new CliError('HUB_KEY_NOT_PINNED', `sites ${first.listenerId} and ${w.listenerId} pinned different hub keys (${first.fingerprint}, ${w.fingerprint})`);
    }
    if (pinned !== undefined && !fingerprintsEqual(pinned, first.fingerprint))
      throw new CliError('HUB_KEY_NOT_PINNED', `site ${first.listenerId} pinned hub key ${first.fingerprint}, not the expected ${pinned}`);
    return { key: first.hubKey, fingerprint: first.fingerprint, trust: 'witness' };
  }
  if (pinned === undefined) {
    throw new CliError(
      'HUB_KEY_NOT_PINNED',
      "nothing to check the signatures against: give --fingerprint <hub fingerprint> (from `keyhub-server init`, compared out of band; or set KEYHUB_HUB_FINGERPRINT) or --witness <a site's `keyhub-listener checkpoints export`>",
    );
  }
  if (!fingerprintsEqual(pinned, dataFingerprint)) throw new CliError('HUB_KEY_NOT_PINNED', `audit is signed by hub key ${dataFingerprint}, not by the expected ${pinned}`);
  return { key: source.signingKey, fingerprint: dataFingerprint, trust: 'fingerprint' };
}

/** An export file as written, or the hub's ledger fetched through the API (a --from/--to window of it): verified here either way. */
async function openSource(file: string | undefined, asked: RangeAsked): Promise<AuditSource> {
  if (file !== undefined) {
    if (asked.from !== undefined || asked.to !== undefined) throw new CliError('INPUT_INVALID', '--from/--to choose what to fetch from the hub; an export file is verified as it was written');
    const f = await readAuditExport(file);
    return { name: file, signingKey: f.signingKey, checkpoints: f.checkpoints, events: () => f.events(), ...(f.range ? { range: f.range } : {}) };
  }
  const c = await client();
  const cps = await c.get('/v1/audit/checkpoints', api.checkpointList);
  const window = await resolveWindow(c, cps.checkpoints, asked);
  const range = window.range && (await closeRange(c, window.range, window.end));
  return {
    name: 'hub',
    signingKey: Buffer.from(cps.signingKey, 'base64'),
    checkpoints: window.checkpoints,
    events: () => apiAuditEvents(c, window.start - 1, window.end),
    ...(range ? { range } : {}),
  };
}

/**
 * A tampered ledger: with --json, the whole report (ok false, firstBad
 * {seq, id}, kind, detail) and the error beside it, exit code from the
 * errors table; in text, the error names the event and the kind.
 */
function reportTampering(result: VerifyReport, keyReplaced: boolean, json: boolean, storedKey: Buffer): void {
  const { seq, id } = result.firstBad ?? { seq: 0, id: null };
  const replaced = keyReplaced ? ` (and the hub's stored signing key ${publicKeyFingerprint(storedKey)} is not the pinned one)` : '';
  const error = new CliError('AUDIT_CHAIN_BROKEN', `audit ledger ${result.kind ?? 'broken'} at event ${seq}${id ? ` (${id})` : ''}: ${result.detail ?? ''}${replaced}`, {
    seq,
    ...(id ? { id } : {}),
    kind: result.kind ?? 'changed',
    reason: result.detail ?? '',
    verifiedEvents: result.events,
    source: result.source,
    trust: result.trust,
    hubKeyReplaced: keyReplaced,
  });
  if (!json) throw error;
  printJson({ ...result, error: error.toJSON() });
  process.exitCode = error.exitCode;
}

function printVerified(result: VerifyReport): void {
  printLine(`audit chain ok (${result.source}): ${count(result.events, 'event')}, ${count(result.checkpoints, 'checkpoint')}`);
  const r = result.range;
  printFields([
    ['head', result.head ? `seq ${result.head.seq} ${result.head.hash}` : 'none (empty chain)'],
    ...(r ? ([['range', `events ${r.from} to ${r.to ?? 'the head'}, checked from the checkpoint at event ${r.start}${r.toHead ? '' : ' (the ledger goes on)'}`]] as Array<[string, string]>) : []),
    ['hub key', `${result.fingerprint} (${result.trust === 'witness' ? `pinned by ${result.sites?.join(', ')}` : 'pinned fingerprint'})`],
    ...(result.witnessed ? ([['witnessed', `${count(result.witnessed.checkpoints, 'checkpoint')} held by the sites, up to event ${result.witnessed.lastSeq}`]] as Array<[string, string]>) : []),
  ]);
  if (result.unsigned > 0) printLine(`note: ${count(result.unsigned, 'event')} after the last checkpoint ${result.unsigned === 1 ? 'is' : 'are'} not yet covered by a signature`);
  if (result.unwitnessed) printLine(`note: ${count(result.unwitnessed, 'event')} after the last checkpoint the sites hold ${result.unwitnessed === 1 ? 'is' : 'are'} not yet witnessed`);
}

interface VerifyOptions extends RangeAsked {
  file?: string;
  fingerprint?: string;
  witness: string[];
}

async function verifyCommand(opts: VerifyOptions, json: boolean): Promise<void> {
  const pinned = opts.fingerprint ?? (await pinnedHubFingerprint());
  const witnesses = await Promise.all(opts.witness.map((w) => readWitnessCopy(w)));
  const source = await openSource(opts.file, { from: opts.from, to: opts.to });
  const trust = trustedKey(source, pinned, witnesses);
  const v = await verifyAuditLedger(source.events(), source.checkpoints, trust.key, {
    ...(witnesses.length ? { witness: witnesses.flatMap((w) => w.checkpoints) } : {}),
    ...(source.range ? { start: source.range.start, partial: !source.range.toHead } : {}),
  });
  const covered = source.checkpoints.reduce((m, c) => Math.max(m, c.seq), 0);
  const head = v.head?.seq ?? 0;
  const result: VerifyReport = {
    ...v,
    source: source.name,
    fingerprint: trust.fingerprint,
    trust: trust.trust,
    unsigned: Math.max(0, head - covered),
    ...(witnesses.length ? { sites: witnesses.map((w) => w.listenerId), unwitnessed: Math.max(0, head - (v.witnessed?.lastSeq ?? 0)) } : {}),
    ...(source.range ? { range: source.range } : {}),
  };
  const keyReplaced = !source.signingKey.equals(trust.key);
  if (!result.ok) return reportTampering(result, keyReplaced, json, source.signingKey);
  if (keyReplaced)
    throw new CliError('HUB_KEY_NOT_PINNED', `the chain verifies under the pinned key, but the hub's stored signing key ${publicKeyFingerprint(source.signingKey)} is not ${trust.fingerprint}`);
  if (json) return printJson(result);
  printVerified(result);
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit trail');

  audit
    .command('verify')
    .description(
      "check the hash chain, the checkpoint chain and the checkpoints' signatures here, in this process, against a pinned fingerprint or sites' checkpoint copies: fetched through the API, or from an export file (offline)",
    )
    .option('--file <export.jsonl>', 'verify an export written by `keyhub audit export` (no hub needed)')
    .option('--fingerprint <fp>', 'the hub signing key fingerprint, known out of band (default: $KEYHUB_HUB_FINGERPRINT, or the one pinned by `keyhub login --hub-fingerprint`)')
    .option(
      '--witness <file>',
      "a site's checkpoint copy (`keyhub-listener checkpoints export`); repeatable. The hub's history must hold every checkpoint in it",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--from <seq|time>', 'online: check only from this event (a sequence number, or the first event dated at or after an ISO 8601 time)')
    .option('--to <seq|time>', 'online: check only up to this event (a sequence number, or the last event dated at or before a time)')
    .action(async (opts: VerifyOptions, cmd: Command) => verifyCommand(opts, globals(cmd).json));

  audit
    .command('export')
    .description('write the chain and its checkpoints as JSON lines, for offline verification')
    .requiredOption('--out <file>', 'file to write')
    .option('--from <seq|time>', 'first event wanted: a sequence number, or the first event dated at or after an ISO 8601 time (the file starts at the checkpoint before it)')
    .option('--to <seq|time>', 'last event wanted: a sequence number, or the last event dated at or before a time (the file runs to the checkpoint after it)')
    .action(async (opts: { out: string } & RangeAsked, cmd: Command) => {
      const g = globals(cmd);
      const summary = await writeAuditExport(await client(), opts.out, { from: opts.from, to: opts.to });
      if (g.json) return printJson(summary);
      printLine(`exported ${count(summary.events, 'event')} and ${count(summary.checkpoints, 'checkpoint')} to ${summary.file}`);
      const r = summary.range;
      printFields([
        ['head', summary.head ? `seq ${summary.head.seq} ${summary.head.hash}` : 'none (empty chain)'],
        ...(r ? ([['range', `events ${r.from} to ${r.to ?? 'the head'}, from the checkpoint at event ${r.start}`]] as Array<[string, string]>) : []),
        ['hub key', summary.fingerprint],
      ]);
    });

  audit
    .command('checkpoint')
    .description('have the hub sign the current chain head now (admins)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const { checkpoint } = await (await client()).post('/v1/audit/checkpoints', api.checkpointResult);
      if (g.json) return printJson({ checkpoint });
      if (!checkpoint) printLine('nothing to sign: the chain is empty or its head already has a checkpoint');
      else printLine(`checkpoint signed at seq ${checkpoint.seq} (${checkpoint.hash})`);
    });
}
