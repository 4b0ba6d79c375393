import { insertRows } from '@keyhub/hub/dist/store/queries/bulk';
/**
 * An in-process hub for the fan-out and scale stages: its own SoftHSM token,
 * PostgreSQL database (and nats-server when asked), initialized with the
 * real initHub, and a runtime from the real composition root. Listeners are
 * written straight into the database as active, each with a root KEK made
 * by the hub HSM and stored under the master key, exactly as approval would.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { Client as PgClient } from 'pg';
import { enrollmentFingerprint } from '@keyhub/protocol';
import { aesKcv, createLogger, type Logger } from '@keyhub/shared';
import { HubBus, hubBusOptions } from '@keyhub/hub/dist/bus/hub-bus';
import { hubConfigSchema, type HubConfig } from '@keyhub/hub/dist/config';
import { openHubRuntime, type HubRuntime } from '@keyhub/hub/dist/container';
import { HubCa } from '@keyhub/hub/dist/crypto/ca';
import { hubNatsAccess } from '@keyhub/hub/dist/nats/hub-nats';
import { NatsAuthority } from '@keyhub/hub/dist/nats/nats-authority';
import { writeNatsServerConfig } from '@keyhub/hub/dist/nats/server-config';
import { currentRevocations } from '@keyhub/hub/dist/store/queries/nats-identities';
import type { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import { kekMacData } from '@keyhub/hub/dist/crypto/row-mac';
import { initHub } from '@keyhub/hub/dist/operations/hub/init-hub';
import { grantServiceRole } from '@keyhub/hub/dist/operations/audit/service-role';
import { TOKENS } from '@keyhub/hub/dist/tokens';
import { createSoftHsm, createTestDatabase, makeTempDir, startNatsServer, type NatsServerHandle, type SoftHsmEnv, type TestDatabase } from '../env';
import type { StageRun } from './context';
import { mapPool } from './lib';
import { useSoftHsm } from './softhsm-env';

export const HUB_TOKEN = 'bench-hub';
export const HUB_PIN_ENV = 'KEYHUB_BENCH_HUB_PIN';

export interface HubFixture {
  soft: SoftHsmEnv;
  db: TestDatabase;
  nats?: NatsServerHandle;
  config: HubConfig;
  rt: HubRuntime;
  logger: Logger;
  keyring: HubKeyring;
  /** A statement as the database owner: the runtime is the service role, which may not create triggers or functions (test fault injection). */
  asOwner(sql: string, params?: unknown[]): Promise<unknown[]>;
}

export async function createHubFixture({ cleanup }: StageRun, opts: { nats: boolean }): Promise<HubFixture> {
  const soft = await createSoftHsm([HUB_TOKEN]);
  cleanup.add('SoftHSM tokens', () => soft.cleanup());
  cleanup.add('SOFTHSM2_CONF', useSoftHsm(soft, { [HUB_PIN_ENV]: HUB_TOKEN }));
  const db = await createTestDatabase('keyhub_bench');
  cleanup.add(`database ${db.name}`, () => db.drop());
  let nats: NatsServerHandle | undefined;
  if (opts.nats) {
    const n = await startNatsServer({ name: 'keyhub-bench' });
    nats = n;
    cleanup.add('nats-server', () => n.cleanup());
  }
  const config = hubConfigSchema.parse({
    databaseUrl: db.serviceUrl,
    ownerDatabaseUrl: db.url,
    nats: { servers: [nats?.url ?? 'nats://127.0.0.1:4222'], name: 'keyhub-bench-hub' },
    hsm: { module: soft.modulePath, tokenLabel: HUB_TOKEN, pinEnv: HUB_PIN_ENV, sessions: 4 },
  });
  const logger = createLogger('keyhub-bench', process.env.KEYHUB_LOG_LEVEL ?? 'warn');

  // As keyhub-server init does: the owner migrates and grants; the runtime below is the service role's.
  const init = await openHubRuntime(config, { requireKeyring: false, logger, databaseRole: 'owner' });
  try {
    await initHub(init.hsm, init.ds, 'bench');
    await grantServiceRole(init.ds, config);
  } finally {
    await init.close();
  }
  const rt = await openHubRuntime(config, { logger });
  cleanup.add('hub runtime', () => rt.close());
  const asOwner = async (sql: string, params: unknown[] = []): Promise<unknown[]> => {
    const client = new PgClient({ connectionString: db.url });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  };
  return { soft, db, nats, config, rt, logger, keyring: rt.container.resolve(TOKENS.keyring), asOwner };
}

/**
 * A second nats-server for the fixture, configured as production runs it:
 * the hub CA and the NATS operator, system and account keys made as
 * `keyhub-server init` makes them (in the fixture's hub token), and the
 * server's operator, accounts, full resolver and TLS from what
 * `keyhub-server nats-config` writes (the same `writeNatsServerConfig`).
 * Returns the server and the fixture's configuration pointed at it, with
 * `nats.auth: 'jwt'` and `nats.tls: true` (the defaults). The fixture's own
 * `nats` (option `nats: true`) stays a plain server.
 */
export async function startAuthNats({ cleanup }: StageRun, fx: HubFixture, name = 'keyhub-bench-auth'): Promise<{ server: NatsServerHandle; config: HubConfig }> {
  const { hsm, ds } = fx.rt;
  await HubCa.ensure(hsm, ds, 'bench');
  const { authority } = await NatsAuthority.ensure(hsm);
  const ca = await HubCa.load(hsm, ds);
  const dir = await makeTempDir('bench-nats-config');
  cleanup.add('nats-config files', () => dir.remove());
  const files = await writeNatsServerConfig(authority, ca, {
    outDir: dir.path,
    hostnames: ['localhost'],
    ips: ['127.0.0.1'],
    actor: 'bench',
    accountJwt: await authority.accountJwt(await currentRevocations(ds)),
  });
  const server = await startNatsServer({ name, auth: files });
  cleanup.add(`nats-server ${name} (auth + TLS)`, () => server.cleanup());
  const config: HubConfig = { ...fx.config, nats: { ...fx.config.nats, servers: [server.url], auth: 'jwt', tls: true } };
  return { server, config };
}

/**
 * The hub's bus as `keyhub serve` connects it: `hubNatsAccess` (with auth, a
 * fresh user key and its JWT signed by the account key in the HSM; with TLS,
 * the hub CA root pinned), `HubBus.connect` with serve's options, and the
 * account publisher started after the bus (none when `nats.auth` is 'none').
 */
export async function connectHubBusAsServe({ cleanup }: StageRun, fx: HubFixture, config: HubConfig, label: string): Promise<HubBus> {
  const { hsm, ds } = fx.rt;
  const ca = await HubCa.load(hsm, ds);
  const nats = await hubNatsAccess(hsm, ds, config, ca, fx.logger);
  const bus = await HubBus.connect(hubBusOptions(config.nats, nats), fx.logger);
  cleanup.add(`hub bus (${label})`, () => bus.close());
  if (nats.publisher) {
    const publisher = nats.publisher;
    await publisher.start();
    cleanup.add(`NATS account publisher (${label})`, () => publisher.stop());
  }
  return bus;
}

export function listenerIds(n: number, prefix = 'bench'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(4, '0')}`);
}

/**
 * Inserts listeners as active with one active root KEK each. Each KEK is a
 * fresh AES-256 key of the hub HSM (session object), its KCV computed in the
 * HSM, wrapped under the master key and destroyed; identity keys are fresh
 * EC P-256 SPKIs; one RSA-2048 transport SPKI is shared (it is not used after
 * approval).
 */
export async function insertActiveListeners(fx: HubFixture, ids: string[]): Promise<void> {
  const { hsm, ds } = fx.rt;
  const transport = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
  const keks = await mapPool(ids, 4, async (listenerId) => {
    const handle = await hsm.generateAesKey(32, { token: false, extractable: true, sign: true });
    try {
      // As approval stores it: under the KEK store, bound to its row by the row MAC.
      const id = randomUUID();
      const kcv = await aesKcv(hsm, handle);
      const wrapped = await fx.keyring.wrapRootKek(handle);
      return { id, kcv, wrapped, mac: await fx.keyring.macRow(kekMacData({ id, listenerId, version: 1, kcv, wrapped })) };
    } finally {
      await hsm.destroy(handle);
    }
  });
  const now = new Date();
  const listenerRows: unknown[][] = [];
  const kekRows: unknown[][] = [];
  ids.forEach((id, i) => {
    const identity = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    const fingerprint = enrollmentFingerprint(id, identity.toString('base64'), transport.toString('base64'));
    listenerRows.push([id, 'active', identity, transport, 'sha256', fingerprint, JSON.stringify([{ name: 'hsm', kind: 'pkcs11' }]), `${id}.bench.invalid`, now, now, 'bench', now, now]);
    kekRows.push([keks[i].id, id, 1, keks[i].wrapped, keks[i].kcv, keks[i].mac, 'active', now]);
  });
  await insertRows(
    ds.manager,
    'listeners',
    ['id', 'state', 'identity_key', 'transport_key', 'oaep_hash', 'fingerprint', 'targets', 'hostname', 'requested_at', 'approved_at', 'approved_by', 'activated_at', 'last_seen_at'],
    listenerRows,
  );
  await insertRows(ds.manager, 'keks', ['id', 'listener_id', 'version', 'wrapped', 'kcv', 'mac', 'state', 'activated_at'], kekRows);
}
