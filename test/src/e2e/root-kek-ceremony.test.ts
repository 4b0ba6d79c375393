import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Client } from 'pg';
import type { api } from '@keyhub/protocol';
import { aesValueKcv, shamirCombine, xorCombine } from '@keyhub/shared';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { pkcs11Tool, run } from '../env';
import { Deployment, LISTENER_CLI } from '../harness/deployment';

/**
 * A root KEK by key components (split knowledge), end to end on real parts:
 * nats-server with auth, PostgreSQL, SoftHSM2 tokens, the real CLIs, and
 * custodians typing their parts into `keyhub-listener root-kek enter`
 * running in a real terminal (tmux, driven with send-keys). XOR components
 * (3 of 3) at one site, Shamir shares (2 of 3) at another.
 */
describe('end to end: root KEK by key components, entered by custodians in a terminal', function () {
  this.timeout(300_000);
  let d: Deployment;
  let pg: Client;
  const tmuxSocket = `keyhub-ceremony-${randomBytes(4).toString('hex')}`;
  const custodians = ['cust-a', 'cust-b', 'cust-c'];
  /** Everything a custodian's CLI printed, by custodian: checked for the others' parts. */
  const custodianOutput = new Map<string, string>();
  /** Every part released, compact lower-case hex: none may appear in any log, audit event or other output. */
  const secrets: string[] = [];

  before(async () => {
    d = await Deployment.create(['site-x', 'site-s', 'site-t']);
    await d.startHub();
    for (const c of [...custodians, 'approver-z']) await d.createOperator(c, ['approver']);
    pg = new Client({ connectionString: d.db.url });
    await pg.connect();
  });

  after(async () => {
    await run('tmux', ['-L', tmuxSocket, 'kill-server']).catch(() => undefined);
    await pg?.end();
    await d?.cleanup();
  });

  async function startCeremony(site: string, extra: string[]): Promise<{ id: string; hash: string }> {
    const fingerprint = await d.enrollListener(site, { approve: false, start: false });
    const r = await d.keyhub(['--json', 'listener', 'root-kek', 'components', site, '--fingerprint', fingerprint, '--custodians', custodians.join(','), ...extra]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { approval } = JSON.parse(r.stdout) as api.ApprovalPending;
    assert.equal(approval.state, 'pending');
    assert.equal(approval.required, 3, 'every custodian approves');
    return { id: approval.id, hash: approval.hash };
  }

  async function fetchPart(site: string, custodian: string): Promise<api.RootKekPartView> {
    const r = await d.keyhub(['--json', 'listener', 'root-kek', 'component', site], { as: custodian });
    custodianOutput.set(custodian, (custodianOutput.get(custodian) ?? '') + r.stdout + r.stderr);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const part = JSON.parse(r.stdout) as api.RootKekPartView;
    secrets.push(part.component.replace(/^\d+-/, '').replace(/\s+/g, '').toLowerCase());
    return part;
  }

  const partBytes = (p: api.RootKekPartView) => Buffer.from(p.component.replace(/^\d+-/, '').replace(/\s+/g, ''), 'hex');

  /** `keyhub-listener root-kek enter` in a tmux window of its own, with the site's environment. */
  async function openTerminal(site: string): Promise<{ screen(): Promise<string>; type(text: string): Promise<void>; waitFor(re: RegExp, what: string): Promise<string> }> {
    const s = d.site(site);
    const script = path.join(d.dir.path, `enter-${site}.sh`);
    const env = Object.entries(s.env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `export ${k}='${String(v).replace(/'/g, `'\\''`)}'`)
      .join('\n');
    await writeFile(script, `${env}\n'${process.execPath}' '${LISTENER_CLI}' --home '${s.home}' root-kek enter\necho "ENTER-EXIT=$?"\nsleep 600\n`, { mode: 0o700 });
    const started = await run('tmux', ['-L', tmuxSocket, '-f', '/dev/null', 'new-session', '-d', '-s', site, '-x', '250', '-y', '60', `bash ${script}`]);
    assert.equal(started.code, 0, started.stderr);
    const screen = async () => (await run('tmux', ['-L', tmuxSocket, 'capture-pane', '-p', '-J', '-S', '-1000', '-t', site])).stdout;
    return {
      screen,
      type: async (text: string) => {
        assert.equal((await run('tmux', ['-L', tmuxSocket, 'send-keys', '-t', site, '-l', text])).code, 0);
        assert.equal((await run('tmux', ['-L', tmuxSocket, 'send-keys', '-t', site, 'Enter'])).code, 0);
      },
      waitFor: async (re: RegExp, what: string) => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const text = await screen();
          if (re.test(text)) return text;
          if (Date.now() > deadline) assert.fail(`terminal never showed ${what}:\n${text}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      },
    };
  }

  async function kekLabels(site: string): Promise<string[]> {
    const token = d.site(site).token;
    const r = await pkcs11Tool(d.hsm, ['--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'secrkey']);
    assert.equal(r.code, 0, r.stderr);
    return [...r.stdout.matchAll(/label:\s+(\S+)/g)].map((m) => m[1]).filter((l) => l.startsWith('keyhub-kek:'));
  }

  async function pushAndConfirm(key: string, site: string): Promise<void> {
    await d.keyhubJson(['key', 'create', key, '--alg', 'AES-256']);
    const r = await d.keyhub(['distribute', key, '--to', site, '--wait', '--timeout', '60']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rows = await d.keyhubJson<StatusRow[]>(['status', key]);
    assert.deepEqual(
      rows.map((x) => [x.listener, x.state]),
      [[site, 'confirmed']],
    );
  }

  it('XOR, 3 custodians: approvals by the custodians only, each part released once to its own custodian, entered in a terminal, KCV equal on both sides, pushes confirmed', async () => {
    const req = await startCeremony('site-x', ['--parts', '3']);
    // Not a custodian: an approver who is not named cannot decide, and nobody has a part before the quorum.
    const outsider = await d.keyhub(['approvals', 'approve', req.id, '--hash', req.hash], { as: 'approver-z' });
    assert.notEqual(outsider.code, 0);
    assert.match(outsider.stdout + outsider.stderr, /APPROVER_NOT_CUSTODIAN/);
    const early = await d.keyhub(['listener', 'root-kek', 'component', 'site-x'], { as: 'cust-a' });
    assert.notEqual(early.code, 0);
    assert.match(early.stdout + early.stderr, /CEREMONY_NOT_FOUND/);
    for (const c of custodians) {
      const r = await d.keyhub(['--json', 'approvals', 'approve', req.id, '--hash', req.hash], { as: c });
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    // Approved: the site gets its NATS identity and the ceremony (KCVs only); the agent keeps it for `root-kek enter`.
    await d.startListener('site-x');
    await waitUntil(() => existsSync(path.join(d.site('site-x').home, 'root-kek-ceremony.json')), 'the ceremony at the site');
    assert.equal(await d.listenerState('site-x'), 'approved', 'not active before the root KEK is confirmed');

    const parts = new Map<string, api.RootKekPartView>();
    for (const c of custodians) parts.set(c, await fetchPart('site-x', c));
    assert.deepEqual(
      custodians.map((c) => parts.get(c)!.part),
      [1, 2, 3],
    );
    // Once each, and only one's own.
    const again = await d.keyhub(['listener', 'root-kek', 'component', 'site-x'], { as: 'cust-b' });
    assert.match(again.stdout + again.stderr, /COMPONENT_ALREADY_RELEASED/);
    const stranger = await d.keyhub(['listener', 'root-kek', 'component', 'site-x'], { as: 'approver-z' });
    assert.match(stranger.stdout + stranger.stderr, /COMPONENT_NOT_YOURS/);
    // The last release erased the nonce: no part can be derived again, by anyone.
    const { rows: nonce } = await pg.query(`SELECT nonce IS NULL AS erased FROM root_kek_ceremonies WHERE listener_id = 'site-x'`);
    assert.deepEqual(nonce, [{ erased: true }]);

    const values = custodians.map((c) => partBytes(parts.get(c)!));
    for (const [i, c] of custodians.entries()) assert.equal(aesValueKcv(values[i]), parts.get(c)!.kcv, 'each part has the KCV shown with it');
    const kekKcv = parts.get('cust-a')!.kekKcv;
    assert.equal(aesValueKcv(xorCombine(values)), kekKcv, "the parts combine (independently, here) to the hub's root KEK KCV");

    const t = await openTerminal('site-x');
    await t.waitFor(/component 1 of 3, custodian cust-a/, 'the prompt for cust-a');
    await t.type(parts.get('cust-a')!.component);
    await t.waitFor(/part 1 accepted/, 'part 1 accepted');
    await t.waitFor(/component 2 of 3, custodian cust-b/, 'the prompt for cust-b');
    // A wrong part: cust-c's, typed at cust-b's turn. Refused by its KCV, and nothing is in the token.
    await t.type(parts.get('cust-c')!.component);
    await t.waitFor(/COMPONENT_KCV_MISMATCH/, 'the refusal of a wrong component');
    assert.deepEqual(await kekLabels('site-x'), [], 'nothing stored after a refused component');
    await t.type(parts.get('cust-b')!.component);
    await t.waitFor(/part 2 accepted/, 'part 2 accepted');
    await t.type(parts.get('cust-c')!.component);
    const done = await t.waitFor(/ENTER-EXIT=\d+/, 'the end of root-kek enter');
    assert.match(done, /ENTER-EXIT=0/, done);
    assert.match(done, new RegExp(`KCV ${kekKcv}, equal to the hub's`));
    for (const s of secrets) assert.ok(!done.toLowerCase().replace(/\s+/g, '').includes(s), 'hidden input: no part on the screen');

    await d.waitForListenerState('site-x', 'active');
    const { rows: keks } = await pg.query(`SELECT kcv, state FROM keks WHERE listener_id = 'site-x'`);
    assert.deepEqual(keks, [{ kcv: kekKcv, state: 'active' }], 'the hub activated the root KEK on the KCV the site confirmed');
    assert.equal((await kekLabels('site-x')).length, 1, 'the root KEK is in the site token');
    await pushAndConfirm('ceremony/xor-1', 'site-x');
  });

  it('Shamir 2 of 3: any two shares rebuild the root KEK at the site; a share with a wrong digit is refused; pushes confirmed', async () => {
    const req = await startCeremony('site-s', ['--parts', '3', '--threshold', '2']);
    for (const c of custodians) assert.equal((await d.keyhub(['approvals', 'approve', req.id, '--hash', req.hash], { as: c })).code, 0);
    await d.startListener('site-s');
    await waitUntil(() => existsSync(path.join(d.site('site-s').home, 'root-kek-ceremony.json')), 'the ceremony at the site');
    const shares = new Map<string, api.RootKekPartView>();
    for (const c of custodians) shares.set(c, await fetchPart('site-s', c));
    const kekKcv = shares.get('cust-a')!.kekKcv;
    const toPart = (v: api.RootKekPartView) => ({ x: v.part, value: partBytes(v) });
    assert.equal(aesValueKcv(shamirCombine([toPart(shares.get('cust-a')!), toPart(shares.get('cust-c')!)])), kekKcv);
    assert.equal(aesValueKcv(shamirCombine([toPart(shares.get('cust-b')!), toPart(shares.get('cust-c')!)])), kekKcv);

    const t = await openTerminal('site-s');
    await t.waitFor(/share 1 of the 2 needed/, 'the first share prompt');
    const c3 = shares.get('cust-c')!.component;
    const flipped = c3.slice(0, -1) + (c3.endsWith('0') ? '1' : '0');
    await t.type(flipped);
    await t.waitFor(/COMPONENT_KCV_MISMATCH/, 'the refusal of a changed share');
    assert.deepEqual(await kekLabels('site-s'), []);
    await t.type(c3);
    await t.waitFor(/part 3 accepted/, 'share 3 accepted');
    await t.type(shares.get('cust-a')!.component);
    const done = await t.waitFor(/ENTER-EXIT=\d+/, 'the end of root-kek enter');
    assert.match(done, /ENTER-EXIT=0/, done);
    await d.waitForListenerState('site-s', 'active');
    await pushAndConfirm('ceremony/shamir-1', 'site-s');
  });

  it('a part row handed to another operator in the database is not released (row MAC)', async () => {
    // A new ceremony for a third site, parts not fetched yet; the attacker (database owner) moves part 1 to approver-z.
    const fingerprint = await enrollExtraSite();
    const r = await d.keyhub(['--json', 'listener', 'root-kek', 'components', 'site-t', '--fingerprint', fingerprint, '--custodians', custodians.join(','), '--parts', '3']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { approval } = JSON.parse(r.stdout) as api.ApprovalPending;
    for (const c of custodians) assert.equal((await d.keyhub(['approvals', 'approve', approval.id, '--hash', approval.hash], { as: c })).code, 0);
    await pg.query(
      `UPDATE root_kek_ceremony_parts SET custodian_id = (SELECT id FROM operators WHERE name = 'approver-z') WHERE part = 1 AND ceremony_id = (SELECT id FROM root_kek_ceremonies WHERE listener_id = 'site-t')`,
    );
    const stolen = await d.keyhub(['listener', 'root-kek', 'component', 'site-t'], { as: 'approver-z' });
    assert.notEqual(stolen.code, 0);
    assert.match(stolen.stdout + stolen.stderr, /ROW_MAC_INVALID/);
  });

  it('no part appears in any log, audit event, database row or other custodian output', async () => {
    const exportFile = path.join(d.dir.path, 'ceremony-audit.json');
    assert.equal((await d.keyhub(['audit', 'export', '--out', exportFile], { as: 'auditor' })).code, 0);
    const audit = await readFile(exportFile, 'utf8');
    assert.match(audit, /kek\.component_released/, 'the releases are audited');
    const { rows } = await pg.query(`SELECT row_to_json(c)::text AS c FROM root_kek_ceremonies c UNION ALL SELECT row_to_json(p)::text FROM root_kek_ceremony_parts p`);
    const places: Array<[string, string]> = [
      ['hub log', d.hub!.output],
      ['listener site-x log', d.site('site-x').process?.output ?? ''],
      ['listener site-s log', d.site('site-s').process?.output ?? ''],
      ['audit export', audit],
      ['ceremony rows', rows.map((x: { c: string }) => x.c).join('\n')],
    ];
    assert.ok(secrets.length >= 6);
    for (const [what, text] of places) {
      const compact = text.toLowerCase().replace(/\s+/g, '');
      for (const s of secrets) assert.ok(!compact.includes(s), `a part appears in the ${what}`);
    }
    // Each custodian's output holds their own parts only.
    for (const [c, text] of custodianOutput) {
      const compact = text.toLowerCase().replace(/\s+/g, '');
      const own = secrets.filter((s) => compact.includes(s));
      assert.equal(own.length, 2, `${c} saw exactly their own two parts (one per ceremony)`);
    }
  });

  async function enrollExtraSite(): Promise<string> {
    return d.enrollListener('site-t', { approve: false, start: false });
  }
});

async function waitUntil(probe: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
