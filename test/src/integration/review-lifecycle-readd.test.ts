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

/**
 * Review of issue 11 (declarative distribution by labels): a site whose
 * label is removed gets a destroy for what the policy placed there; once the
 * site confirms it, its distribution is `destroyed`. When the label is set
 * back, the policy matches the site again and the hub must queue the
 * version there afresh, not count the destroyed distribution as held (the
 * policy would call the site covered while the key is gone). The listener's
 * side (a 'policy' destroy does not bar the version for good) is
 * review-lifecycle-tombstone.test.ts.
 */
describe('review: a site that matches a placement again gets the key again (PostgreSQL, hub SoftHSM2 token)', function () {
  this.timeout(120_000);
  const cleanup = new Cleanup();
  let fx: HubFixture;
  let officer: Principal;

  before(async function () {
    this.timeout(120_000);
    fx = await createHubFixture({ cleanup, rec: undefined as unknown as StageRecorder, ctx: {} as BenchContext }, { nats: false });
    await insertActiveListeners(fx, ['ra-a']);
    const id = randomUUID();
    await fx.asOwner(`INSERT INTO operators (id, name, roles, state, created_by) VALUES ($1, 'officer', '{key-officer}', 'active', 'test')`, [id]);
    officer = { operatorId: id, name: 'officer', roles: ['key-officer'], method: 'token', tokenId: null, tokenScope: null, expiresAt: null };
    await fx.rt.container.resolve(CreateKey).executeMany([{ name: 'ra-key', algorithm: 'AES-256', actor: 'officer' }]);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
  });

  const distribution = async () =>
    (
      (await fx.asOwner(
        `SELECT d.state, d.last_package_id FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name = 'ra-key' AND d.listener_id = 'ra-a'`,
      )) as Array<{ state: string; last_package_id: string }>
    )[0];

  it('label removed: destroy; label set back: the version is queued there afresh', async () => {
    const labels = fx.rt.container.resolve(SetListenerLabels);
    const reconcile = fx.rt.container.resolve(ReconcilePlacements);
    await labels.execute('ra-a', { set: { env: 'prod' } }, officer);
    await fx.rt.container.resolve(CreatePlacement).execute({ name: 'ra', key: 'ra-key', selector: { env: 'prod' } }, officer);
    await reconcile.execute();
    const first = await distribution();
    assert.equal(first?.state, 'queued');
    // The site confirmed it (as a receipt with a matching KCV leaves it).
    await fx.asOwner(`UPDATE distributions SET state = 'confirmed', confirmed_at = now() WHERE last_package_id = $1`, [first.last_package_id]);

    await labels.execute('ra-a', { set: { env: 'dev' } }, officer);
    assert.equal((await reconcile.execute()).removed, 1);
    const [{ n }] = (await fx.asOwner(`SELECT count(*)::int AS n FROM key_commands WHERE listener_id = 'ra-a' AND action = 'destroy'`)) as Array<{ n: number }>;
    assert.equal(n, 1, 'a destroy for the site that left');
    // The site confirmed the destroy (as apply-command-receipt.ts leaves the distribution).
    await fx.asOwner(`UPDATE distributions SET state = 'destroyed', updated_at = now() WHERE last_package_id = $1`, [first.last_package_id]);

    await labels.execute('ra-a', { set: { env: 'prod' } }, officer);
    const back = await reconcile.execute();
    assert.equal(back.queued, 1, 'the site matches again: the key is queued there again');
    const again = await distribution();
    assert.equal(again.state, 'queued');
    assert.notEqual(again.last_package_id, first.last_package_id, 'with a fresh package');
  });
});
