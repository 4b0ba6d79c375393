import type { NatsConnection } from 'nats';
import type { DataSource } from 'typeorm';
import { runReadinessChecks, type Hsm, type Readiness } from '@keyhub/shared';
import { pingDatabase } from '../store/queries/health';

/** No key carries this label; looking it up costs one C_FindObjects and proves a session and login still work. */
export interface HubReadinessDeps {
  ds: DataSource;
  nats: NatsConnection;
  hsm: Hsm;
  /** 'ok' once the service consumes and relays; the phase name before and after. */
  service: () => string;
}

/**
 * Ready means this replica can take a share of the work: the service is
 * running and the database, NATS and the HSM all answer now.
 */
export function hubReadiness(deps: HubReadinessDeps): () => Promise<Readiness> {
  return () =>
    runReadinessChecks({
      service: async () => deps.service(),
      database: async () => {
        await pingDatabase(deps.ds);
        return 'ok';
      },
      nats: async () => {
        if (deps.nats.isClosed()) return 'closed';
        if (deps.nats.isDraining()) return 'draining';
        // A PING/PONG round trip: "not closed" alone is also true while reconnecting.
        await deps.nats.flush();
        return 'ok';
      },
      hsm: async () => {
        await deps.hsm.ping();
        return 'ok';
      },
    });
}
