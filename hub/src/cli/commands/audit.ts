import type { Command } from 'commander';
import { fingerprintsEqual, publicKeyFingerprint } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { hubSigningKey, readAuditEvents, readCheckpoints, writeCheckpoint } from '../../audit/audit-store';
import { verifyAuditChain, type AuditVerification } from '../../audit/verify-audit';
import { TOKENS } from '../../tokens';
import { readAuditExport, writeAuditExport } from '../audit-file';
import { printFields, printJson, printLine } from '../output';
import { globalOptions, withDatabase, withRuntime } from '../runtime';

interface VerifyReport extends AuditVerification {
  source: string;
  fingerprint: string;
  /** Events after the last checkpoint: linked by hashes but not yet covered by a signature. */
  unsigned: number;
}

/**
 * Whoever can rewrite the whole database or file can also swap in a key of
 * their own and re-sign; only a fingerprint known from elsewhere rules that out.
 */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function checkPin(fingerprint: string, pinned: string | undefined): void {
  if (pinned !== undefined && !fingerprintsEqual(pinned, fingerprint)) {
    throw new KeyhubError('HUB_KEY_NOT_PINNED', `audit is signed by hub key ${fingerprint}, not by the expected ${pinned}`);
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
    .description('check the hash chain and the signed checkpoints, in the database (no HSM needed) or in an export file')
    .option('--file <export.jsonl>', 'verify an export written by `keyhub audit export` instead of the database')
    .option('--fingerprint <fp>', 'require the checkpoints to be signed by the hub key with this fingerprint')
    .action(async (opts: { file?: string; fingerprint?: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      let result: VerifyReport;
      if (opts.file !== undefined) {
        const file = await readAuditExport(opts.file);
        checkPin(file.fingerprint, opts.fingerprint);
        const v = await verifyAuditChain(file.events(), file.checkpoints, file.signingKey);
        result = report(opts.file, file.fingerprint, file.checkpoints.map((c) => c.seq), v);
      } else {
        result = await withDatabase(g, async (ds) => {
          const key = await hubSigningKey(ds);
          const fingerprint = publicKeyFingerprint(key);
          checkPin(fingerprint, opts.fingerprint);
          // Checkpoints first: the chain only grows, so the events read afterwards cover them all.
          const checkpoints = await readCheckpoints(ds);
          const v = await verifyAuditChain(readAuditEvents(ds), checkpoints, key);
          return report('database', fingerprint, checkpoints.map((c) => c.seq), v);
        });
      }
      if (!result.ok && result.firstBad) {
        const { seq, reason } = result.firstBad;
        throw new KeyhubError('AUDIT_CHAIN_BROKEN', `audit chain broken at event ${seq}: ${reason}`, {
          details: { seq, reason, verifiedEvents: result.events, source: result.source },
        });
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
    .description('write the chain and its checkpoints as JSON lines, for offline verification (no HSM needed)')
    .requiredOption('--out <file>', 'file to write')
    .action(async (opts: { out: string }, cmd: Command) => {
      const g = globalOptions(cmd);
      const summary = await withDatabase(g, (ds) => writeAuditExport(ds, opts.out));
      if (g.json) return printJson(summary);
      printLine(`exported ${count(summary.events, 'event')} and ${count(summary.checkpoints, 'checkpoint')} to ${summary.file}`);
      printFields([
        ['head', summary.head ? `seq ${summary.head.seq} ${summary.head.hash}` : 'none (empty chain)'],
        ['hub key', summary.fingerprint],
      ]);
    });

  audit
    .command('checkpoint')
    .description('sign the current chain head with the hub signing key in the HSM')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      const checkpoint = await withRuntime(g, (rt) => writeCheckpoint(rt.ds, rt.container.resolve(TOKENS.keyring)));
      if (g.json) return printJson({ checkpoint: checkpoint ?? null });
      if (!checkpoint) printLine('nothing to sign: the chain is empty or its head already has a checkpoint');
      else printLine(`checkpoint signed at seq ${checkpoint.seq} (${checkpoint.hash})`);
    });
}
