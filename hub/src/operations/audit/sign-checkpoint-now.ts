import { injectable } from 'tsyringe';
import { HubContext } from '../../context';
import { WriteCheckpoint, type ChainedCheckpoint } from './write-checkpoint';

/**
 * An admin asks for the chain head to be signed now rather than at the next
 * scheduled checkpoint. Same rule as the scheduled one: the segment since
 * the last checkpoint must verify first (AUDIT_CHAIN_BROKEN otherwise).
 */
@injectable()
export class SignCheckpointNow {
  constructor(private readonly ctx: HubContext) {}

  execute(): Promise<ChainedCheckpoint | undefined> {
    return new WriteCheckpoint(this.ctx.ds, this.ctx.keyring).execute();
  }
}
