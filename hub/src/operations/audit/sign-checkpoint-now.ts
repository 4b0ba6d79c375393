import { injectable } from 'tsyringe';
import type { StoredCheckpoint } from '../../audit/verify-audit';
import { HubContext } from '../../context';
import { writeCheckpoint } from './write-checkpoint';

/** An admin asks for the chain head to be signed now rather than at the next scheduled checkpoint. */
@injectable()
export class SignCheckpointNow {
  constructor(private readonly ctx: HubContext) {}

  execute(): Promise<StoredCheckpoint | undefined> {
    return writeCheckpoint(this.ctx.ds, this.ctx.keyring);
  }
}
