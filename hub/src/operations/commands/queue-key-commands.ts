import type { EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';

/**
 * CONTRACT STUB (owned by the site-commands work): what a lifecycle change
 * asks of every site that holds a key version. Other operations call
 * `queueKeyCommands` inside their own transaction; it records one command per
 * (listener, target) holding the version, signs and queues it (compromise and
 * destroy on the urgent lane), and writes their audit events.
 */
export type KeyCommandAction = 'suspend' | 'resume' | 'deactivate' | 'compromise' | 'destroy';

export interface KeyCommandRequest {
  keyVersionId: string;
  action: KeyCommandAction;
  /** Only these sites (e.g. a site removed from a distribution policy); default: every site that holds or was sent the version. */
  destinations?: Array<{ listenerId: string; target: string }>;
  /** Free text for the audit (never key material). */
  reason?: string;
}

export interface QueuedKeyCommands {
  commandIds: string[];
  /** How many (listener, target) pairs were addressed. */
  sites: number;
}

export async function queueKeyCommands(m: EntityManager, requests: KeyCommandRequest[], actor: string): Promise<QueuedKeyCommands> {
  void m;
  void requests;
  void actor;
  throw new KeyhubError('INTERNAL', 'key commands are not built yet');
}
