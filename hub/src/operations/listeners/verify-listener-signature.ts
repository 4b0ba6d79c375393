import type { KeyObject } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { verifyEnvelope, type SignedEnvelope } from '@keyhub/protocol';
import { KeyhubError, parseSpki } from '@keyhub/shared';
import { listenerIdentityKey } from '../../store/queries/listeners';

/** How long an identity key read from the database is trusted before it is read again (a revocation takes effect within this). */
const IDENTITY_CACHE_MS = 60_000;

/**
 * Checks that a message from a listener is signed by that listener's
 * identity key. Rule: unverified input changes nothing; a revoked or unknown
 * listener is no signer. Keys are cached for a minute; a failed check drops
 * the cached key, so a key replaced by re-enrollment is read again.
 */
export class VerifyListenerSignature {
  private readonly identityCache = new Map<string, { key: KeyObject; at: number }>();

  constructor(private readonly ds: DataSource) {}

  async execute(envelope: SignedEnvelope, listenerId: string): Promise<void> {
    let cached = this.identityCache.get(listenerId);
    if (!cached || Date.now() - cached.at > IDENTITY_CACHE_MS) {
      const identityKey = await listenerIdentityKey(this.ds, listenerId);
      if (!identityKey) throw new KeyhubError('SIGNER_UNKNOWN', `no enrolled listener ${listenerId}`);
      cached = { key: parseSpki(identityKey, 'identity key'), at: Date.now() };
      this.identityCache.set(listenerId, cached);
    }
    if (!verifyEnvelope(envelope, cached.key)) {
      this.identityCache.delete(listenerId);
      throw new KeyhubError('SIGNATURE_INVALID', `signature does not verify under listener ${listenerId}'s identity key`);
    }
  }
}
