import type { Command } from 'commander';
import { api, fingerprintsEqual, publicKeyFingerprint, verifyAuditChain, type AuditVerification } from '@keyhub/protocol';
import { apiAuditEvents, readAuditExport, writeAuditExport } from '../audit-file';
import { client, globals } from '../context';
import { CliError } from '../errors';
import { printFields, printJson, printLine } from '../output';

interface VerifyReport extends AuditVerification {
  source: string;
  fingerprint: string;
  /** Events after the last checkpoint: linked by hashes but not yet covered by a signature. */
  unsigned: number;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/**
 * Whoever can rewrite the whole database or file can also swap in a key of
 * their own and re-sign; only a fingerprint known from elsewhere rules that out.
 */
function checkPin(fingerprint: string, pinned: string | undefined): void {
  if (pinned !== undefined && !fingerprintsEqual(pinned, fingerprint)) {
    throw new CliError('HUB_KEY_NOT_PINNED', `audit is signed by hub key ${fingerprint}, not by the expected ${pinned}`);
  }
}

function report(source: string, fingerprint: string, checkpointSeqs: number[], v: AuditVerification): VerifyReport {
  const covered = checkpointSeqs.length ? Math.max(...checkpointSeqs) : 0;
  return { source, fingerprint, ...v, unsigned: v.head ? Math.max(0, v.head.seq - covered) : 0 };
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit trail');

  audit
    .command('verify')
    .description('check the hash chain and the signed checkpoints here, in this process: fetched through the API, or from an export file (offline)')
    .option('--file <export.jsonl>', 'verify an export written by `keyhub audit export` (no hub needed)')
    .option('--fingerprint <fp>', 'require the checkpoints to be signed by the hub key with this fingerprint')
    .action(async (opts: { file?: string; fingerprint?: string }, cmd: Command) => {
      const g = globals(cmd);
      let result: VerifyReport;
      if (opts.file !== undefined) {
        const file = await readAuditExport(opts.file);
        checkPin(file.fingerprint, opts.fingerprint);
        const v = await verifyAuditChain(file.events(), file.checkpoints, file.signingKey);
        result = report(opts.file, file.fingerprint, file.checkpoints.map((c) => c.seq), v);
      } else {
        const c = await client();
        const cps = await c.get('/v1/audit/checkpoints', api.checkpointList);
        const key = Buffer.from(cps.signingKey, 'base64');
        const fingerprint = publicKeyFingerprint(key);
        checkPin(fingerprint, opts.fingerprint);
        const v = await verifyAuditChain(apiAuditEvents(c), cps.checkpoints, key);
        result = report('hub', fingerprint, cps.checkpoints.map((cp) => cp.seq), v);
      }
      if (!result.ok && result.firstBad) {
        const { seq, reason } = result.firstBad;
        throw new CliError('AUDIT_CHAIN_BROKEN', `audit chain broken at event ${seq}: ${reason}`, { seq, reason, verifiedEvents: result.events, source: result.source });
      }
      if (g.json) return printJson(result);
      printLine(`audit chain ok (${result.source}): ${count(result.events, 'event')}, ${count(result.checkpoints, 'checkpoint')}`);
      printFields([
        ['head', result.head ? `seq ${result.head.seq} ${result.head.hash}` : 'none (empty chain)'],
        ['hub key', result.fingerprint],
      ]);
      if (result.unsigned > 0) printLine(`note: ${count(result.unsigned, 'event')} after the last checkpoint ${result.unsigned === 1 ? 'is' : 'are'} not yet covered by a signature`);
    });

  audit
    .command('export')
    .description('write the chain and its checkpoints as JSON lines, for offline verification')
    .requiredOption('--out <file>', 'file to write')
    .action(async (opts: { out: string }, cmd: Command) => {
      const g = globals(cmd);
      const summary = await writeAuditExport(await client(), opts.out);
      if (g.json) return printJson(summary);
      printLine(`exported ${count(summary.events, 'event')} and ${count(summary.checkpoints, 'checkpoint')} to ${summary.file}`);
      printFields([
        ['head', summary.head ? `seq ${summary.head.seq} ${summary.head.hash}` : 'none (empty chain)'],
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
