import type { DataSource, EntityManager } from 'typeorm';
import type { Message, SignedEnvelope } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';

/** What signing commands needs of the hub keyring. */
export interface CommandSigner {
  signBatch<M extends Message>(payloads: M[]): Promise<Array<SignedEnvelope<M>>>;
}

/*
 * `queueKeyCommands` is called inside other operations' transactions with
 * only their EntityManager (its contract), yet must sign with the hub key.
 * As with the audit sealer (audit/audit-seal.ts), the composition root
 * registers the signer for the data source it opens; keyed by data source,
 * so two runtimes in one process (tests) each sign with their own HSM.
 */
const signers = new WeakMap<DataSource, () => Promise<CommandSigner>>();

export function signKeyCommandsWith(ds: DataSource, load: () => Promise<CommandSigner>): void {
  let loaded: Promise<CommandSigner> | undefined;
  signers.set(ds, () => {
    loaded ??= load().catch((err: unknown) => {
      loaded = undefined;
      throw err;
    });
    return loaded;
  });
}

export async function commandSignerFor(m: EntityManager): Promise<CommandSigner> {
  const load = signers.get(m.connection);
  if (!load) throw new KeyhubError('INTERNAL', 'no command signer registered for this data source (the composition root registers one)');
  return load();
}
