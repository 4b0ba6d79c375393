/**
 * Stage "compromise": a real deployment from the test harness (`keyhub
 * serve`, four `keyhub-listener run` processes, each with its own SoftHSM
 * token, nats-server with the project's JWT auth and TLS), driven from an
 * in-process hub runtime of the bench on the same database and hub token.
 *
 * Every site holds key K. The four listeners are stopped, 1,000 packages are
 * queued to each (4,000 in their consumers), the listeners start again, and
 * as soon as they are consuming their backlogs K is marked compromised
 * (ChangeKeyState, what the API route calls). Measured: from that call until
 * the hub has applied the last of the four signed command receipts, next to
 * how far the backlogs had drained by then and how long they took in all:
 * the urgent lane must not wait for them.
 */
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { createLogger } from '@keyhub/shared';
import { hubConfigSchema } from '@keyhub/hub/dist/config';
import { openHubRuntime } from '@keyhub/hub/dist/container';
import type { Principal } from '@keyhub/hub/dist/domain/principal';
import { Distribute } from '@keyhub/hub/dist/operations/distributions/distribute';
import { ChangeKeyState } from '@keyhub/hub/dist/operations/keys/change-key-state';
import { CreateKey } from '@keyhub/hub/dist/operations/keys/create-key';
import { Deployment } from '../harness/deployment';
import type { StageRun } from './context';
import { median, now, pollUntil, say } from './lib';
import { useSoftHsm } from './softhsm-env';

const SITES = ['site-1', 'site-2', 'site-3', 'site-4'];
const BACKLOG = 1000;
const ROUNDS = 2;
const PIN_ENV = 'KEYHUB_BENCH_CMP_HUB_PIN';
const PRINCIPAL: Principal = { operatorId: randomUUID(), name: 'bench-compromise', roles: ['admin'], method: 'token', tokenId: null, tokenScope: null, expiresAt: null };

interface Round {
  confirmAllMs: number;
  /** Backlog packages (of 4,000) confirmed when the last command receipt was applied. */
  backlogConfirmedAtLastAnswer: number;
  backlogDrainMs: number;
}

export async function runCompromiseE2e(stage: StageRun): Promise<void> {
  const { rec, cleanup } = stage;
  const t = now();
  const d = await Deployment.create(SITES);
  cleanup.add('deployment', () => d.cleanup());
  await d.startHub();
  for (const site of SITES) await d.enrollListener(site);
  rec.details.setupMs = now() - t;
  const restore = useSoftHsm(d.hsm, { [PIN_ENV]: 'hub' });
  cleanup.add('SOFTHSM2_CONF', restore);
  const file = JSON.parse(await readFile(d.hubConfigPath, 'utf8')) as { hsm: Record<string, unknown> };
  const rt = await openHubRuntime(hubConfigSchema.parse({ ...file, hsm: { ...file.hsm, pinEnv: PIN_ENV } }), { logger: createLogger('keyhub-bench', 'warn') });
  cleanup.add('bench hub runtime', () => rt.close());
  const createKey = rt.container.resolve(CreateKey);
  const distribute = rt.container.resolve(Distribute);
  const changeState = rt.container.resolve(ChangeKeyState);
  const all = SITES.map((listenerId) => ({ listenerId }));
  const count = async (sql: string, params: unknown[]): Promise<number> => Number((await rt.ds.query(sql, params))[0].n);
  const confirmedOf = (prefix: string): Promise<number> =>
    count(`SELECT count(*) AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id WHERE k.name LIKE $1 AND d.state = 'confirmed'`, [`${prefix}%`]);

  const rounds: Round[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const held = `bench-cmp-held-${round}`;
    await createKey.execute({ name: held, algorithm: 'AES-256', actor: 'bench' });
    await distribute.execute({ keys: [{ name: held }], to: all, actor: 'bench' });
    await pollUntil(`${held} at every site`, 60_000, 100, async () => ((await confirmedOf(held)) === SITES.length ? true : undefined));
    for (const site of SITES) await d.stopListener(site);
    const prefix = `bench-cmp-backlog-${round}-`;
    const names = Array.from({ length: BACKLOG }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 250) await createKey.executeMany(names.slice(i, i + 250).map((name) => ({ name, algorithm: 'AES-256', actor: 'bench' })));
    await distribute.execute({ keys: names.map((name) => ({ name })), to: all, actor: 'bench' });
    await pollUntil('backlog published', 120_000, 100, async () => ((await count('SELECT count(*) AS n FROM outbox', [])) === 0 ? true : undefined));
    const backlogStart = now();
    await Promise.all(SITES.map((site) => d.startListener(site)));
    // The listeners are consuming their backlogs: compromise now.
    // answered_at is the database's wall clock (same machine): measured from the wall-clock call time.
    const wall0 = Date.now();
    const r = await changeState.execute({ name: held, action: 'compromise', reason: 'bench' }, PRINCIPAL);
    if (!('sites' in r) || r.sites !== SITES.length) throw new Error(`compromise addressed ${'sites' in r ? r.sites : 'no'} sites`);
    // Each site's first confirmed compromise counts (a drift heal may add another command later).
    const lastAnswer = await pollUntil('every site confirmed the compromise', 60_000, 5, async () => {
      const rows = (await rt.ds.query(
        `SELECT c.listener_id, min(c.answered_at) FILTER (WHERE c.state = 'confirmed') AS answered_at
           FROM key_commands c JOIN key_versions v ON v.id = c.key_version_id JOIN keys k ON k.id = v.key_id
          WHERE k.name = $1 AND c.action = 'compromise' GROUP BY c.listener_id`,
        [held],
      )) as Array<{ listener_id: string; answered_at: Date | null }>;
      if (rows.length === SITES.length && rows.every((x) => x.answered_at !== null)) return Math.max(...rows.map((x) => x.answered_at!.getTime()));
      return undefined;
    });
    const confirmAllMs = lastAnswer - wall0;
    const backlogConfirmedAtLastAnswer = await count(
      `SELECT count(*) AS n FROM distributions d JOIN key_versions v ON v.id = d.key_version_id JOIN keys k ON k.id = v.key_id
        WHERE k.name LIKE $1 AND d.confirmed_at IS NOT NULL AND d.confirmed_at <= $2`,
      [`${prefix}%`, new Date(lastAnswer)],
    );
    await pollUntil('backlogs drained', 300_000, 200, async () => ((await confirmedOf(prefix)) === BACKLOG * SITES.length ? true : undefined));
    const backlogDrainMs = now() - backlogStart;
    rounds.push({ confirmAllMs, backlogConfirmedAtLastAnswer, backlogDrainMs });
    say(
      `compromise: round ${round}: all ${SITES.length} sites confirmed ${confirmAllMs.toFixed(0)} ms after the call, with ${BACKLOG * SITES.length - backlogConfirmedAtLastAnswer} ` +
        `of ${BACKLOG * SITES.length} backlog packages still unconfirmed; the backlogs drained in ${(backlogDrainMs / 1000).toFixed(1)} s`,
    );
  }
  const m = median(rounds.map((x) => x.confirmAllMs)) ?? NaN;
  rec.goal('compromise_4_sites_behind_backlog_ms', `compromise with ${SITES.length} real listeners each behind a ${BACKLOG}-package backlog: every site confirmed`, m, 'ms', '<=', 2000, {
    note: `median of ${rounds.length}: ${rounds.map((x) => x.confirmAllMs.toFixed(0)).join(', ')} ms (call -> last signed receipt applied at the hub); auth+TLS NATS`,
  });
  const drain = median(rounds.map((x) => x.backlogDrainMs)) ?? NaN;
  rec.metric('compromise_vs_backlog_drain', 'the same as a share of the time the backlogs took to drain (same rounds)', m / drain, 'x', {
    digits: 3,
    note: `backlogs of ${BACKLOG * SITES.length} packages drained in ${rounds.map((x) => (x.backlogDrainMs / 1000).toFixed(1)).join(', ')} s; unconfirmed at the last answer: ${rounds.map((x) => BACKLOG * SITES.length - x.backlogConfirmedAtLastAnswer).join(', ')}`,
  });
}
