import { strict as assert } from 'node:assert';
import { Client } from 'pg';
import { pkcs11Tool } from '../env';
import { Deployment } from '../harness/deployment';

/**
 * Rotation at the sites, end to end, through the operator's CLI only (issue
 * 11, "Rotation"): `keyhub key rotate` sends the new version to every site
 * that holds the key; after the key's grace period the scheduler deactivates
 * the old version there (protect usages off, as pkcs11-tool shows);
 * `keyhub key destroy` of the old version removes it from every token, each
 * confirmed by a signed receipt. Real `keyhub serve`, two `keyhub-listener
 * run` processes, nats-server with auth and TLS, PostgreSQL, SoftHSM2.
 */
describe('end to end: rotation reaches every site, the old version is deactivated after the grace period, then destroyed', function () {
  this.timeout(180_000);
  const SITES = ['site-a', 'site-b'];
  let d: Deployment;
  let pg: Client;

  before(async () => {
    d = await Deployment.create(SITES);
    await d.startHub();
    for (const site of SITES) await d.enrollListener(site);
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    await pg?.end();
    await d?.cleanup();
  });

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** `Usage:` of each secret-key object labelled `<key>.v<version>` in the site's token, as pkcs11-tool lists them. */
  async function usages(site: string, key: string, version: number): Promise<string[]> {
    const token = d.site(site).token;
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout
      .split(/\n(?=Secret Key Object)/)
      .filter((block) => new RegExp(`label:\\s+\\S*${key}\\.v${version}\\s`).test(`${block}\n`))
      .map((block) => /Usage:\s+(.*)/.exec(block)?.[1]?.trim() ?? '');
  }

  async function commandStates(key: string, version: number, action: string): Promise<string[]> {
    const r = await pg.query(
      `SELECT c.listener_id, c.state FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name = $1 AND v.version = $2 AND c.action = $3 ORDER BY c.listener_id`,
      [key, version, action],
    );
    return r.rows.map((x: { listener_id: string; state: string }) => `${x.listener_id}:${x.state}`);
  }

  it('rotate, wait out the grace period, destroy the old version', async () => {
    const create = await d.keyhub(['key', 'create', 'rot-key', '--alg', 'AES-256', '--grace', '3s']);
    assert.equal(create.code, 0, create.stdout + create.stderr);
    const push = await d.keyhub(['distribute', 'rot-key', '--to', 'site-a', '--to', 'site-b', '--wait', '--timeout', '60']);
    assert.equal(push.code, 0, push.stdout + push.stderr);
    for (const site of SITES) assert.deepEqual(await usages(site, 'rot-key', 1), ['encrypt, decrypt'], `${site} holds v1`);

    const rotated = await d.keyhubJson<{ version: number; queued: number; graceUntil: string | null }>(['key', 'rotate', 'rot-key']);
    assert.equal(rotated.version, 2);
    assert.equal(rotated.queued, 2, 'the new version is queued to both sites that hold the key');
    assert.ok(rotated.graceUntil, 'the old version has a grace deadline');
    await waitFor('v2 confirmed at both sites', async () => {
      const r = await pg.query(
        `SELECT count(*)::int AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
          WHERE k.name = 'rot-key' AND v.version = 2 AND d.state = 'confirmed'`,
      );
      return r.rows[0].n === 2 ? true : undefined;
    });
    for (const site of SITES) {
      assert.deepEqual(await usages(site, 'rot-key', 2), ['encrypt, decrypt'], `${site} holds v2`);
      assert.deepEqual(await usages(site, 'rot-key', 1), ['encrypt, decrypt'], `${site}: v1 still usable during the grace period`);
    }

    // After the grace period (3 s) the scheduler (every 5 s by default) deactivates v1 at the hub and at both sites.
    assert.deepEqual(
      await waitFor('v1 deactivate confirmed at both sites', async () => {
        const s = await commandStates('rot-key', 1, 'deactivate');
        return s.length === 2 && s.every((x) => x.endsWith(':confirmed')) ? s : undefined;
      }),
      ['site-a:confirmed', 'site-b:confirmed'],
    );
    const v1 = await pg.query(`SELECT v.state FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'rot-key' AND v.version = 1`);
    assert.equal(v1.rows[0].state, 'deactivated');
    for (const site of SITES) {
      assert.deepEqual(await usages(site, 'rot-key', 1), ['decrypt'], `${site}: deactivated v1 may only process (decrypt), not protect`);
      assert.deepEqual(await usages(site, 'rot-key', 2), ['encrypt, decrypt'], `${site}: v2 untouched`);
    }

    const destroy = await d.keyhub(['key', 'destroy', 'rot-key', '--version', '1', '--reason', 'end of life']);
    assert.equal(destroy.code, 0, destroy.stdout + destroy.stderr);
    assert.deepEqual(
      await waitFor('v1 destroy confirmed at both sites', async () => {
        const s = await commandStates('rot-key', 1, 'destroy');
        return s.length === 2 && s.every((x) => x.endsWith(':confirmed')) ? s : undefined;
      }),
      ['site-a:confirmed', 'site-b:confirmed'],
    );
    for (const site of SITES) {
      assert.deepEqual(await usages(site, 'rot-key', 1), [], `${site}: pkcs11-tool finds no v1 object`);
      assert.deepEqual(await usages(site, 'rot-key', 2), ['encrypt, decrypt'], `${site}: v2 still there`);
    }
    const wiped = await pg.query(`SELECT v.state, length(v.wrapped) AS n FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'rot-key' AND v.version = 1`);
    assert.deepEqual(wiped.rows[0], { state: 'destroyed', n: 0 }, 'the hub keeps no material of a destroyed version');
  });
});
