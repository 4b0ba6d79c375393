/**
 * Stage "bare": the limits the product is compared against, measured in
 * this run on this machine — SoftHSM2 through the Hsm port, JetStream
 * publish-with-ack through the nats client, and the import rate of a target
 * token.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as pkcs11js from 'pkcs11js';
import { connect, nanos, StorageType } from 'nats';
import { aesKcv, Pkcs11Hsm } from '@keyhub/shared';
import { JetStreamPublisher } from '@keyhub/hub/dist/bus/jetstream-publisher';
import { createSoftHsm, startNatsServer } from '../env';
import type { StageRun } from './context';
import { measureRate, say, type RateResult } from './lib';
import { useSoftHsm } from './softhsm-env';
import type { SyncHsmWorkerInput } from './sync-hsm-worker';

const HSM_MS = 2500;
const HSM_MAX_OPS = 40_000;

export async function runBare(stage: StageRun): Promise<void> {
  const { rec, cleanup, ctx } = stage;
  const soft = await createSoftHsm(['bench-hsm', 'bench-target']);
  cleanup.add('SoftHSM tokens', () => soft.cleanup());
  cleanup.add('SOFTHSM2_CONF', useSoftHsm(soft, { BENCH_HSM_PIN: 'bench-hsm', BENCH_TARGET_PIN: 'bench-target' }));

  const hsm = await Pkcs11Hsm.open({ module: soft.modulePath, tokenLabel: 'bench-hsm', pinEnv: 'BENCH_HSM_PIN', sessions: 4 });
  cleanup.add('hub-side HSM', () => hsm.close());
  rec.details.hsm = { module: soft.modulePath, sessions: 4, boundPerMeasurement: { maxMs: HSM_MS, maxOps: HSM_MAX_OPS } };

  // (a) AES-KWP wrap of a session AES-256 key under a session KEK, handles cached; with the
  // attributes of the hub's transient session objects (not CKA_PRIVATE), its fastest wrap.
  const kek = await hsm.generateAesKey(32, { token: false, wrap: true, unwrap: true, private: false });
  const key = await hsm.generateAesKey(32, { token: false, extractable: true, private: false });
  const wrap1 = await measureRate({ concurrency: 1, maxOps: HSM_MAX_OPS, maxMs: HSM_MS, warmupOps: 200 }, () => hsm.wrapKwp(kek, key));
  const wrap4 = await measureRate({ concurrency: 4, maxOps: HSM_MAX_OPS, maxMs: HSM_MS, warmupOps: 200 }, () => hsm.wrapKwp(kek, key));
  rec.metric('wrap_1', 'AES-KWP wrap (C_WrapKey), 1 caller', wrap1.rate, 'ops/s');
  rec.metric('wrap_4', 'AES-KWP wrap (C_WrapKey), 4 callers / 4 sessions', wrap4.rate, 'ops/s');
  say(`bare: wrap ${wrap1.rate.toFixed(0)}/s (1), ${wrap4.rate.toFixed(0)}/s (4)`);

  // (b) ECDSA P-256 over a precomputed digest.
  const pair = await hsm.generateEcP256KeyPair({ token: false, label: 'bench-signing', id: Buffer.from('bench-signing') });
  const digest = createHash('sha256').update(randomBytes(64)).digest();
  const sign1 = await measureRate({ concurrency: 1, maxOps: HSM_MAX_OPS, maxMs: HSM_MS, warmupOps: 100 }, () => hsm.signDigestEcdsa(pair.privateKey, digest));
  const sign4 = await measureRate({ concurrency: 4, maxOps: HSM_MAX_OPS, maxMs: HSM_MS, warmupOps: 100 }, () => hsm.signDigestEcdsa(pair.privateKey, digest));
  rec.metric('sign_1', 'ECDSA P-256 sign (C_Sign), 1 caller', sign1.rate, 'ops/s');
  rec.metric('sign_4', 'ECDSA P-256 sign (C_Sign), 4 callers / 4 sessions', sign4.rate, 'ops/s');
  say(`bare: sign ${sign1.rate.toFixed(0)}/s (1), ${sign4.rate.toFixed(0)}/s (4)`);

  // (c) One package's HSM work: a wrap then a signature, in sequence.
  const pkg = async (): Promise<void> => {
    await hsm.wrapKwp(kek, key);
    await hsm.signDigestEcdsa(pair.privateKey, digest);
  };
  const pair1 = await measureRate({ concurrency: 1, maxOps: HSM_MAX_OPS, maxMs: HSM_MS, warmupOps: 100 }, pkg);
  // The limit the fan-out is compared with: the median of three measurements, like the fan-out's passes.
  const pair4runs: RateResult[] = [];
  for (let i = 0; i < 3; i++) pair4runs.push(await measureRate({ concurrency: 4, maxOps: HSM_MAX_OPS, maxMs: HSM_MS, warmupOps: 100 }, pkg));
  const pair4 = [...pair4runs].sort((a, b) => a.rate - b.rate)[1];
  rec.metric('wrap_sign_1', 'wrap+sign per package, 1 caller', pair1.rate, 'pkg/s');
  rec.metric('wrap_sign_4', 'wrap+sign per package, 4 async callers / 4 sessions', pair4.rate, 'pkg/s', {
    note: `median of ${pair4runs.map((r) => r.rate.toFixed(0)).join(', ')}`,
  });
  say(`bare: wrap+sign ${pair1.rate.toFixed(0)} pkg/s (1), ${pair4.rate.toFixed(0)} pkg/s (4)`);

  // (c') The same with synchronous calls on worker threads, each with its own session: how the
  // hub's translateKwp drives the token. The limit is the faster way, so that the product is
  // never compared with a handicapped baseline.
  const input = {
    module: soft.modulePath,
    slot: slotOf(soft.modulePath, 'bench-hsm'),
    kwpMechanism: 0x210a,
    kek,
    key,
    signingKey: pair.privateKey,
    digest,
  };
  const threadRuns: Record<string, RateResult[]> = {};
  const threadMedians: Record<string, RateResult> = {};
  for (const threads of [1, 2]) {
    const runs: RateResult[] = [];
    for (let i = 0; i < 3; i++) runs.push(await measureOnThreads(threads, { ...input, ms: 1500 }));
    threadRuns[threads] = runs;
    threadMedians[threads] = [...runs].sort((a, b) => a.rate - b.rate)[1];
    rec.metric(`wrap_sign_sync_${threads}t`, `wrap+sign per package, synchronous calls on ${threads} worker thread${threads > 1 ? 's' : ''}`, threadMedians[threads].rate, 'pkg/s', {
      note: `median of ${runs.map((r) => r.rate.toFixed(0)).join(', ')}`,
    });
  }
  const ways: Array<[string, number]> = [
    ['4 async callers', pair4.rate],
    ['synchronous, 1 thread', threadMedians[1].rate],
    ['synchronous, 2 threads', threadMedians[2].rate],
  ];
  const [how, best] = ways.reduce((a, b) => (b[1] > a[1] ? b : a));
  rec.metric('wrap_sign_limit', 'bare HSM limit per package (wrap+sign, the fastest of the three ways above)', best, 'pkg/s', { note: how });
  ctx.limits.wrapSignPerPackage = best;
  ctx.limits.wrapSignHow = how;
  ctx.limits.wrapSignAsync4 = pair4.rate;
  say(`bare: wrap+sign on worker threads ${threadMedians[1].rate.toFixed(0)} pkg/s (1), ${threadMedians[2].rate.toFixed(0)} pkg/s (2); limit ${best.toFixed(0)} pkg/s`);
  rec.details.hsmRates = { wrap1, wrap4, sign1, sign4, pair1, pair4, pair4runs, threadRuns };

  // (d) JetStream publish with ack, file storage, 1 KiB messages with a Nats-Msg-Id like the relay's.
  await measureJetStream(stage);

  // (e) Import into a token object on a separate target token.
  await measureTargetImport(soft.modulePath, stage);
}

/** The slot of a token, through a second handle on the module the Hsm adapter has initialized. */
function slotOf(modulePath: string, label: string): Buffer {
  const lib = new pkcs11js.PKCS11();
  lib.load(modulePath);
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === label);
    if (!slot) throw new Error(`no token ${label}`);
    return slot;
  } finally {
    lib.close();
  }
}

/** Packages per second of `threads` sync-hsm-worker threads started together. */
async function measureOnThreads(threads: number, input: SyncHsmWorkerInput): Promise<RateResult> {
  const workers = Array.from({ length: threads }, () => new Worker(join(__dirname, 'sync-hsm-worker.js'), { workerData: input }));
  try {
    await Promise.all(workers.map((w) => once(w, 'ready')));
    const done = workers.map((w) => once(w, 'done') as Promise<{ ops: number; ms: number }>);
    for (const w of workers) w.postMessage('go');
    const results = await Promise.all(done);
    const ops = results.reduce((n, r) => n + r.ops, 0);
    const ms = Math.max(...results.map((r) => r.ms));
    return { ops, ms, rate: (ops * 1000) / ms, concurrency: threads };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function once(worker: Worker, type: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: { type: string }): void => {
      if (msg.type !== type) return;
      worker.off('message', onMessage);
      resolve(msg);
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
  });
}

async function measureJetStream({ rec, cleanup, ctx }: StageRun): Promise<void> {
  const nats = await startNatsServer({ name: 'keyhub-bench-bare' });
  cleanup.add('nats-server (bare)', () => nats.cleanup());
  // Same client options as the product (HubBus.connect): the limit is what this client can do.
  const nc = await connect({ servers: [nats.url], name: 'keyhub-bench', noAsyncTraces: true });
  cleanup.add('NATS connection (bare)', () => nc.close());
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'], storage: StorageType.File, duplicate_window: nanos(120_000) });
  const js = nc.jetstream({ timeout: 10_000 });
  // The product's publisher (the relay's) gives the limit; the nats client's js.publish is a reference.
  const publisher = new JetStreamPublisher(nc, 10_000);
  const payload = randomBytes(1024);
  let n = 0;
  const pub = () => {
    const id = `m-${++n}`;
    return publisher.publish(`bench.to.l${n % 16}.package`, payload, id);
  };
  const pubClient = (withId: boolean) => () => {
    const id = `m-${++n}`;
    return js.publish(`bench.to.l${n % 16}.package`, payload, withId ? { msgID: id } : undefined);
  };
  const seq = await measureRate({ concurrency: 1, maxOps: 20_000, maxMs: 3000, warmupOps: 200 }, pub);
  const piped = await measureRate({ concurrency: 256, maxOps: 80_000, maxMs: 4000, warmupOps: 0 }, pub);
  const pipedClient = await measureRate({ concurrency: 256, maxOps: 80_000, maxMs: 4000, warmupOps: 0 }, pubClient(true));
  const pipedNoId = await measureRate({ concurrency: 256, maxOps: 80_000, maxMs: 4000, warmupOps: 0 }, pubClient(false));
  rec.metric('js_pub_seq', 'JetStream publish+ack, sequential (1 KiB, file store, msg id)', seq.rate, 'msg/s');
  rec.metric('js_pub_256', 'JetStream publish+ack, 256 in flight (1 KiB, file store, msg id)', piped.rate, 'msg/s', { note: "the relay's pipelined publisher" });
  rec.metric('js_pub_256_client', 'JetStream publish+ack through js.publish, 256 in flight, msg id', pipedClient.rate, 'msg/s', { note: "the nats client's own JetStream publish; reference only" });
  rec.metric('js_pub_256_noid', 'JetStream publish+ack through js.publish, 256 in flight, no msg id', pipedNoId.rate, 'msg/s', { note: 'reference only' });
  ctx.limits.jetStreamPublish256 = piped.rate;
  rec.details.jetStream = { seq, piped, pipedClient, pipedNoId, messageBytes: payload.length };
  publisher.close();
  say(`bare: JetStream ${seq.rate.toFixed(0)} msg/s sequential, ${piped.rate.toFixed(0)} msg/s with 256 in flight`);
  await nc.close();
  await nats.cleanup();
}

async function measureTargetImport(modulePath: string, { rec, cleanup, ctx }: StageRun): Promise<void> {
  const target = await Pkcs11Hsm.open({ module: modulePath, tokenLabel: 'bench-target', pinEnv: 'BENCH_TARGET_PIN', sessions: 4 });
  cleanup.add('target HSM', () => target.close());
  const kek = await target.generateAesKey(32, { token: false, wrap: true, unwrap: true });
  const source = await target.generateAesKey(32, { token: false, extractable: true });
  const blob = await target.wrapKwp(kek, source);
  const tokenPolicy = (i: number) => ({
    token: true,
    label: `bench-import-${i}`,
    id: Buffer.from(`bench-import-${i}`),
    sensitive: true,
    encrypt: true,
    decrypt: true,
  });
  let i = 0;
  // Session-object unwrap first (reference): what the listener's KCV probe costs.
  const sessionUnwrap = await measureRate({ concurrency: 1, maxOps: 20_000, maxMs: 2000, warmupOps: 100 }, async () => {
    const h = await target.unwrapKwp(kek, blob, 32, { token: false, sign: true });
    await target.destroy(h);
  });
  const tokenSeq: RateResult = await measureRate({ concurrency: 1, maxOps: 300, maxMs: 15_000, warmupOps: 5 }, () => target.unwrapKwp(kek, blob, 32, tokenPolicy(i++)));
  const token4: RateResult = await measureRate({ concurrency: 4, maxOps: 200, maxMs: 10_000 }, () => target.unwrapKwp(kek, blob, 32, tokenPolicy(i++)));
  rec.metric('import_token_seq', 'C_UnwrapKey into a token object, target token, sequential', tokenSeq.rate, 'ops/s', { note: `${tokenSeq.ops} ops` });
  rec.metric('import_token_4', 'C_UnwrapKey into a token object, 4 concurrent', token4.rate, 'ops/s', { note: `${token4.ops} ops, reference only` });
  rec.metric('unwrap_session_seq', 'C_UnwrapKey into a session object (+destroy), sequential', sessionUnwrap.rate, 'ops/s', { note: 'reference only' });
  ctx.limits.tokenImport = tokenSeq.rate;
  // Reference: the whole HSM sequence a PKCS#11 target runs per package (KCV
  // probe on a session copy, lookup by CKA_ID, token unwrap), on this token
  // that now holds as many objects as a busy listener's.
  const pipeline = await measureRate({ concurrency: 1, maxOps: 150, maxMs: 10_000 }, async () => {
    const probe = await target.unwrapKwp(kek, blob, 32, { token: false, sign: true });
    try {
      await aesKcv(target, probe);
    } finally {
      await target.destroy(probe);
    }
    const policy = tokenPolicy(i++);
    await target.findKeys({ class: 'secret', id: policy.id, token: true });
    await target.unwrapKwp(kek, blob, 32, policy);
  });
  rec.metric('import_pipeline_seq', "listener target's HSM sequence per package (probe unwrap + KCV + lookup + token unwrap), sequential", pipeline.rate, 'ops/s', {
    note: `${pipeline.ops} ops on a token already holding ~${i - pipeline.ops} keys; reference only`,
  });
  rec.details.targetImport = { tokenSeq, token4, sessionUnwrap, pipeline, objectsCreated: i };
  say(
    `bare: token import ${tokenSeq.rate.toFixed(0)}/s sequential, ${token4.rate.toFixed(0)}/s with 4; session unwrap ${sessionUnwrap.rate.toFixed(0)}/s; target pipeline ${pipeline.rate.toFixed(0)}/s`,
  );
  await target.close();
}
