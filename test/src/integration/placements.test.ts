import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
// The fixture first: it loads the hub's composition root (and reflect-metadata) before any operation.
import { createHubFixture, insertActiveListeners, type HubFixture } from '../bench/hub-fixture';
import { Cleanup, type StageRecorder } from '../bench/lib';
import type { BenchContext } from '../bench/context';
import type { Principal } from '@keyhub/hub/dist/domain/principal';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { CreatePlacement } from '@keyhub/hub/dist/operations/placements/create-placement';
import { ReconcilePlacements } from '@keyhub/hub/dist/operations/placements/reconcile-placements';
import { SetListenerLabels } from '@keyhub/hub/dist/operations/placements/set-labels';
import { KeyhubError } from '@keyhub/shared';

/**
 * Placements against PostgreSQL and the hub token, without listeners: what
 * a reconcile queues, that replicas reconciling at once never queue twice
 * (advisory lock; UNIQUE distributions), and that input the policy cannot
 * mean is refused.
 */
describe('placements: reconcile (PostgreSQL, hub SoftHSM2 token)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let officer: Principal;
  const sites = ['pl-a', 'pl-b', 'pl-c', 'pl-d'];

  before(async function () {
    this.timeout(120_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    await insertActiveListeners(fx, sites);
    const id = randomUUID();
    await fx.asOwner(`INSERT INTO operators (id, name, roles, state, created_by) VALUES ($1, 'officer', '{key-officer}', 'active', 'test')`, [id]);
    officer = { operatorId: id, name: 'officer', roles: ['key-officer'], method: 'token', tokenId: null, tokenScope: null, expiresAt: null };
    await fx.rt.container.resolve(CreateKey).executeMany([{ name: 'pl-key', algorithm: 'AES-256', actor: 'officer' }]);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const distributions = async () =>
    (await fx.asOwner(
      `SELECT d.listener_id, count(*)::int AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = 'pl-key' GROUP BY d.listener_id ORDER BY 1`,
    )) as Array<{
      listener_id: string;
      n: number;
    }>;

  it('queues the key at every labelled site once, and replicas reconciling at once never queue twice', async () => {
    const labels = fx.rt.container.resolve(SetListenerLabels);
    for (const s of ['pl-a', 'pl-b']) await labels.execute(s, { set: { env: 'prod' } }, officer);
    await labels.execute('pl-c', { set: { env: 'dev' } }, officer);
    await fx.rt.container.resolve(CreatePlacement).execute({ name: 'pl', key: 'pl-key', selector: { env: 'prod' } }, officer);
    assert.deepEqual(await distributions(), [
      { listener_id: 'pl-a', n: 1 },
      { listener_id: 'pl-b', n: 1 },
    ]);
    await labels.execute('pl-c', { set: { env: 'prod' } }, officer);
    await labels.execute('pl-d', { set: { env: 'prod' } }, officer);
    const reconcile = fx.rt.container.resolve(ReconcilePlacements);
    const runs = await Promise.all([reconcile.execute(), reconcile.execute(), reconcile.execute()]);
    // Whether a run was skipped (lock held) or found nothing left depends on timing; that each site was queued once does not.
    assert.equal(
      runs.reduce((n, r) => n + r.queued, 0),
      2,
    );
    assert.deepEqual(
      (await distributions()).map((d) => d.n),
      [1, 1, 1, 1],
    );
    // Nothing left to do.
    const again = await reconcile.execute();
    assert.equal(again.queued, 0);
  });

  it('refuses a second placement of the same name and labels set and removed at once', async () => {
    await assert.rejects(fx.rt.container.resolve(CreatePlacement).execute({ name: 'pl', key: 'pl-key', listeners: ['pl-a'] }, officer), (e: unknown) => KeyhubError.is(e, 'PLACEMENT_EXISTS'));
    await assert.rejects(fx.rt.container.resolve(SetListenerLabels).execute('pl-a', { set: { env: 'x' }, remove: ['env'] }, officer), (e: unknown) => KeyhubError.is(e, 'INPUT_INVALID'));
    await assert.rejects(fx.rt.container.resolve(SetListenerLabels).execute('no-such-site', { set: { env: 'x' } }, officer), (e: unknown) => KeyhubError.is(e, 'LISTENER_NOT_FOUND'));
  });
});
