import type { JetStreamManager } from 'nats';
import { STREAMS, subjects } from '@keyhub/protocol';
import { KeyhubError } from '@keyhub/shared';
import { enrollmentConsumer } from '../nats/permissions';
import { isNotFound } from './not-found';

/**
 * Removes a site's messages from the DOWN stream (JetStream is transport,
 * PostgreSQL the record: the distributions were already superseded there).
 * `packages`: its key packages, so that none waits for it to pull (a site
 * whose root KEK was compromised, or that is being decommissioned and still
 * reads its urgent lane for the destroy commands). `all`: everything under
 * its subjects, and its durable consumers, once it is decommissioned.
 * Purges by subject and deletes by name: safe to run twice, on any replica.
 */
export async function cleanSiteStream(jsm: JetStreamManager, listenerId: string, what: 'packages' | 'all'): Promise<number> {
  const down = STREAMS.down.name;
  const filters = what === 'packages' ? [subjects.toListener(listenerId, 'package')] : [subjects.toListenerAll(listenerId), subjects.urgent(listenerId)];
  let purged = 0;
  try {
    for (const filter of filters) purged += (await jsm.streams.purge(down, { filter })).purged;
    if (what === 'all') {
      for (const consumer of [subjects.listenerConsumer(listenerId), subjects.listenerUrgentConsumer(listenerId), enrollmentConsumer(listenerId)]) {
        await jsm.consumers.delete(down, consumer).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      }
    }
  } catch (err) {
    throw new KeyhubError('BUS_UNAVAILABLE', `cannot clean the DOWN stream of ${listenerId}`, { cause: err });
  }
  return purged;
}
