import { strict as assert } from 'node:assert';
import { Client } from 'pg';
import { KeyhubError } from '@keyhub/shared';
import { auditHash, type AuditDetails } from '@keyhub/protocol';
import { appendAudit } from '@keyhub/hub/dist/audit/audit-log';
import { WriteCheckpoint } from '@keyhub/hub/dist/operations/audit/write-checkpoint';
import { assertAuditAppendOnly, grantServiceRole } from '@keyhub/hub/dist/operations/audit/service-role';
import { verifyStoredAudit } from '@keyhub/hub/dist/operations/audit/verify-stored-audit';
import { createDataSource } from '@keyhub/hub/dist/store/data-source';
import { createHubFixture, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';

/**
 * The database role matrix: `keyhub serve` connects as the service role,
 * which may only INSERT into and SELECT from the audit tables. Each attack
 * a database client with the service's credentials could try is run against
 * the real PostgreSQL, fails with SQLSTATE 42501 (insufficient_privilege)
 * from the privilege system itself (not the append-only trigger, which the
 * owner could switch off), and changes nothing. Then the owner (or anyone
 * with owner rights) rewrites an event after the last checkpoint and
 * re-chains the hashes: the next checkpoint refuses to sign it.
 */
const AUDIT_TABLES = ['audit_events', 'audit_checkpoints'] as const;
const INSUFFICIENT_PRIVILEGE = '42501';

const ATTACKS: Array<{ name: string; sql: (t: string) => string }> = [
  { name: 'UPDATE', sql: (t) => `UPDATE ${t} SET hash = hash` },
  { name: 'DELETE', sql: (t) => `DELETE FROM ${t}` },
  { name: 'TRUNCATE', sql: (t) => `TRUNCATE ${t}` },
  { name: 'ALTER TABLE ADD COLUMN', sql: (t) => `ALTER TABLE ${t} ADD COLUMN forged text` },
  { name: 'ALTER TABLE DISABLE TRIGGER', sql: (t) => `ALTER TABLE ${t} DISABLE TRIGGER ${t}_no_update` },
  { name: 'ALTER TABLE DISABLE TRIGGER ALL', sql: (t) => `ALTER TABLE ${t} DISABLE TRIGGER ALL` },
  { name: 'ALTER TABLE OWNER', sql: (t) => `ALTER TABLE ${t} OWNER TO CURRENT_USER` },
  { name: 'DROP TABLE', sql: (t) => `DROP TABLE ${t}` },
  { name: 'CREATE TRIGGER', sql: (t) => `CREATE TRIGGER forged BEFORE INSERT ON ${t} FOR EACH ROW EXECUTE FUNCTION keyhub_audit_append_only()` },
  { name: 'session_replication_role (skips triggers)', sql: () => `SET session_replication_role = replica` },
];

describe('audit: the service role can only append, and checkpoints refuse a rewritten segment', function () {
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let service: Client;
  let owner: Client;
  let write: WriteCheckpoint;

  /** What an attack must not change: each audit table's rows, hashed in order, read as the owner. */
  const snapshot = async (): Promise<string> => {
    const r = await owner.query(
      `SELECT (SELECT md5(coalesce(string_agg(e::text, '|' ORDER BY seq), '')) FROM audit_events e) AS events,
              (SELECT md5(coalesce(string_agg(c::text, '|' ORDER BY seq), '')) FROM audit_checkpoints c) AS checkpoints,
              (SELECT count(*) FROM information_schema.columns WHERE table_name IN ('audit_events', 'audit_checkpoints')) AS columns,
              (SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid IN ('audit_events'::regclass, 'audit_checkpoints'::regclass)) AS triggers,
              (SELECT string_agg(relname || ':' || pg_get_userbyid(relowner), ',' ORDER BY relname) FROM pg_class WHERE relname IN ('audit_events', 'audit_checkpoints')) AS owners`,
    );
    return JSON.stringify(r.rows[0]);
  };

  const append = (action: string, details: AuditDetails = {}) => fx.rt.ds.transaction((m) => appendAudit(m, [{ actor: 'test', action, subject: 'test:audit-roles', details }]));

  before(async function () {
    this.timeout(120_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    service = new Client({ connectionString: fx.db.serviceUrl });
    owner = new Client({ connectionString: fx.db.url });
    await service.connect();
    await owner.connect();
    cleanup.add('pg clients', async () => {
      await service.end().catch(() => undefined);
      await owner.end().catch(() => undefined);
    });
    write = new WriteCheckpoint(fx.rt.ds, fx.keyring);
    for (let i = 0; i < 5; i++) await append('test.event', { i });
    assert.ok(await write.execute(), 'a first checkpoint');
    for (let i = 5; i < 8; i++) await append('test.event', { i });
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  it('the hub runtime connects as the service role, which is not the owner and no superuser', async () => {
    const [me] = await fx.rt.ds.query('SELECT current_user AS role, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser');
    assert.equal(me.role, fx.db.serviceRole);
    assert.equal(me.superuser, false);
    await assertAuditAppendOnly(fx.rt.ds);
  });

  it('grants on the audit tables are exactly SELECT and INSERT; other tables get no TRUNCATE, TRIGGER or REFERENCES', async () => {
    const r = await owner.query<{ table: string; privilege: string }>(
      `SELECT table_name AS table, privilege_type AS privilege FROM information_schema.role_table_grants WHERE grantee = $1 ORDER BY 1, 2`,
      [fx.db.serviceRole],
    );
    const by = new Map<string, string[]>();
    for (const row of r.rows) by.set(row.table, [...(by.get(row.table) ?? []), row.privilege]);
    for (const t of AUDIT_TABLES) assert.deepEqual(by.get(t), ['INSERT', 'SELECT'], t);
    assert.deepEqual(by.get('hub_identity'), ['SELECT']);
    for (const [table, privileges] of by) {
      for (const p of ['TRUNCATE', 'TRIGGER', 'REFERENCES']) assert.ok(!privileges.includes(p), `${table} has ${p}`);
    }
    assert.ok((by.get('distributions') ?? []).includes('UPDATE'), 'operational tables stay writable');
  });

  for (const table of AUDIT_TABLES) {
    for (const attack of ATTACKS) {
      it(`as the service role, ${attack.name} on ${table} fails with 42501 and changes nothing`, async () => {
        const before = await snapshot();
        await assert.rejects(service.query(attack.sql(table)), (err: { code?: string; message?: string }) => {
          assert.equal(err.code, INSUFFICIENT_PRIVILEGE, `${attack.name}: ${err.message}`);
          // The privilege system refused, not the append-only trigger (which an owner could switch off).
          assert.doesNotMatch(err.message ?? '', /append-only/);
          return true;
        });
        assert.equal(await snapshot(), before);
      });
    }
  }

  it('as the service role, INSERT and SELECT work (appends through the hub, a checkpoint row through the checkpoint job)', async () => {
    const before = Number((await service.query('SELECT count(*) AS n FROM audit_events')).rows[0].n);
    await append('test.insert');
    assert.equal(Number((await service.query('SELECT count(*) AS n FROM audit_events')).rows[0].n), before + 1);
    const cp = await write.execute();
    assert.ok(cp, 'the checkpoint row was inserted as the service role');
    assert.equal(cp.prevSeq > 0, true, 'and chained to the previous one');
    const [row] = (await service.query('SELECT seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1')).rows;
    assert.equal(Number(row.seq), cp.seq);
    assert.ok((await verifyStoredAudit(fx.rt.ds, fx.keyring.signingSpki)).ok);
  });

  it('serve refuses an owner connection, and init refuses to grant to the owner or a superuser', async () => {
    const ownerDs = createDataSource(fx.db.url, 1);
    await ownerDs.initialize();
    try {
      await assert.rejects(assertAuditAppendOnly(ownerDs), (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID') && /owner/.test((e as Error).message));
      await assert.rejects(grantServiceRole(ownerDs, { databaseUrl: fx.db.url, ownerDatabaseUrl: fx.db.url }), (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID'));
      const superuser = new URL(fx.db.url);
      superuser.username = 'postgres';
      await assert.rejects(
        grantServiceRole(ownerDs, { databaseUrl: superuser.toString(), ownerDatabaseUrl: fx.db.url }),
        (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID') && /superuser/.test((e as Error).message),
      );
    } finally {
      await ownerDs.destroy();
    }
  });

  it('the next checkpoint refuses a segment rewritten and re-chained by the owner, and stores no checkpoint; appends on the forged head fail too', async () => {
    await append('test.after-checkpoint', { n: 1 });
    await append('test.after-checkpoint', { n: 2 });
    await append('test.after-checkpoint', { n: 3 });
    const [last] = (await owner.query('SELECT max(seq)::int AS seq FROM audit_checkpoints')).rows;
    const target = Number(last.seq) + 1;

    // The owner switches the guard off, rewrites the event after the last checkpoint and recomputes every later hash.
    await owner.query('BEGIN');
    await owner.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await owner.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = $1`, [target]);
    const rows = (await owner.query('SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_events WHERE seq >= $1 ORDER BY seq', [target])).rows;
    let prev = rows[0].prev_hash as string;
    for (const r of rows) {
      const hash = auditHash(prev, { seq: Number(r.seq), at: r.at as Date, actor: r.actor, action: r.action, subject: r.subject, details: r.details });
      await owner.query('UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE seq = $1', [r.seq, prev, hash]);
      prev = hash;
    }
    await owner.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
    await owner.query('COMMIT');

    // The forged chain is self-consistent: only the head's HSM seal gives it away.
    const stored = await verifyStoredAudit(fx.rt.ds, fx.keyring.signingSpki);
    assert.equal(stored.ok, true, 'hashes alone cannot tell');
    const checkpointsBefore = (await owner.query('SELECT seq FROM audit_checkpoints ORDER BY seq')).rows;
    const eventsBefore = Number((await owner.query('SELECT max(seq) AS n FROM audit_events')).rows[0].n);

    await assert.rejects(write.execute(), (e: unknown) => {
      assert.ok(KeyhubError.is(e, 'AUDIT_CHAIN_BROKEN'), String(e));
      assert.equal(e.details?.seq, eventsBefore);
      assert.match(e.message, /seal/);
      return true;
    });
    assert.deepEqual((await owner.query('SELECT seq FROM audit_checkpoints ORDER BY seq')).rows, checkpointsBefore, 'no checkpoint row appeared');

    // Nor does the hub chain anything onto the forged head (which would seal it): the action fails with the audit write.
    await assert.rejects(append('test.on-forged-head'), (e: unknown) => KeyhubError.is(e, 'AUDIT_CHAIN_BROKEN') && e.details?.seq === eventsBefore);
    assert.equal(Number((await owner.query('SELECT max(seq) AS n FROM audit_events')).rows[0].n), eventsBefore);
    // The next tick: still refused.
    await assert.rejects(new WriteCheckpoint(fx.rt.ds, fx.keyring).execute(), (e: unknown) => KeyhubError.is(e, 'AUDIT_CHAIN_BROKEN'));
    assert.deepEqual((await owner.query('SELECT seq FROM audit_checkpoints ORDER BY seq')).rows, checkpointsBefore);
  });

  it('a rewrite without re-chaining, and events removed behind a checkpoint, are refused too', async () => {
    // Cut the chain back behind the last checkpoint (owner rights again).
    const [last] = (await owner.query('SELECT max(seq)::int AS seq FROM audit_checkpoints')).rows;
    await owner.query('BEGIN');
    await owner.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await owner.query('DELETE FROM audit_events WHERE seq >= $1', [last.seq]);
    await owner.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
    await owner.query('COMMIT');
    const count = Number((await owner.query('SELECT count(*) AS n FROM audit_checkpoints')).rows[0].n);
    await assert.rejects(write.execute(), (e: unknown) => KeyhubError.is(e, 'AUDIT_CHAIN_BROKEN') && /removed/.test((e as Error).message));
    assert.equal(Number((await owner.query('SELECT count(*) AS n FROM audit_checkpoints')).rows[0].n), count);
  });
});
