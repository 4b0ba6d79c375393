import type { DataSource } from 'typeorm';
import type { CommandReceipt } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { appendAudit, lockAuditChain } from '../../audit/audit-log';
import { answerCommand, lockCommand, markDistributionDestroyed } from '../../store/queries/key-commands';

export type CommandReceiptEffect = 'confirmed' | 'failed' | 'duplicate';

/**
 * Applies a verified command receipt (the caller checked the listener's
 * signature). Rules: a receipt applies only to the command whose envelope
 * hash it names, sent to that listener and target (anything else is
 * COMMAND_RECEIPT_MISMATCH and changes nothing); done and already_done
 * confirm the command, failed and rejected fail it (visible in status, with
 * the site's code); a command already answered changes no more. A confirmed
 * destroy, or a compromise the site could only carry out by destroying the
 * object, marks the version's distribution there `destroyed`: the site no
 * longer holds it, so later commands no longer address it. The command row,
 * the distribution row and the audit event commit together.
 */
export class ApplyCommandReceipt {
  constructor(private readonly ds: DataSource) {}

  async execute(receipt: CommandReceipt, listenerId: string): Promise<CommandReceiptEffect> {
    return this.ds.transaction(async (m) => {
      // Every appender takes the audit chain's lock first (audit-log.ts), then its rows.
      await lockAuditChain(m);
      const command = await lockCommand(m, receipt.commandId);
      if (!command || command.listener_id !== listenerId || command.target !== receipt.target || command.action !== receipt.action) {
        throw new KeyhubError('COMMAND_RECEIPT_MISMATCH', `no command ${receipt.commandId} of this action was sent to ${listenerId}/${receipt.target}`);
      }
      if (command.envelope_sha256.toString('hex') !== receipt.commandSha256) {
        throw new KeyhubError('COMMAND_RECEIPT_MISMATCH', `receipt for command ${receipt.commandId} names a hash that is not that command's`);
      }
      if (command.state !== 'pending') return 'duplicate';
      const confirmed = receipt.outcome === 'done' || receipt.outcome === 'already_done';
      const state = confirmed ? 'confirmed' : 'failed';
      await answerCommand(m, command.id, {
        state,
        outcome: receipt.outcome,
        effect: receipt.effect ?? null,
        errorCode: receipt.error?.code ?? null,
        errorDetail: receipt.error?.detail ?? null,
      });
      const gone = confirmed && (command.action === 'destroy' || receipt.effect === 'destroyed');
      const destroyed = gone ? await markDistributionDestroyed(m, command.key_version_id, listenerId, command.target) : [];
      await appendAudit(m, [
        {
          actor: `listener:${listenerId}`,
          action: confirmed ? 'key_command.confirmed' : 'key_command.failed',
          subject: `key_command:${command.id}`,
          details: {
            command: command.action,
            keyVersionId: command.key_version_id,
            target: command.target,
            outcome: receipt.outcome,
            ...(receipt.effect ? { effect: receipt.effect } : {}),
            ...(receipt.error ? { code: receipt.error.code } : {}),
            ...(destroyed.length ? { distributionsDestroyed: destroyed.join(',') } : {}),
          },
        },
      ]);
      return state;
    });
  }
}
