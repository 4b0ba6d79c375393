import { TargetTokenConnection, TokenTarget } from './targets/target-token';
import 'reflect-metadata';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { MESSAGE_TYPES, type EnrollmentRequest } from '@keyhub/protocol';
import { createLogger, createMetricsRegistry, InstrumentedHsm, KeyhubError, Pkcs11Hsm, type Hsm, type Logger, type Registry } from '@keyhub/shared';
import { readFileSync } from 'node:fs';
import { ListenerBus, type ListenerNatsAccess } from './bus/listener-bus';
import { ListenerNatsCredentials } from './bus/nats-credentials';
import { hsmOf, loadListenerConfig, secureHome, type ListenerConfig } from './config';
import { ListenerKeys } from './listener-keys';
import { HubKeyStore } from './state/hub-key';
import { Pkcs11Target } from './targets/pkcs11-target';
import type { Target } from './targets/target';
import type { TargetToken } from './targets/target-keks';
import { transitTarget } from './targets/transit-targets';

export interface ListenerRuntime {
  home: string;
  config: ListenerConfig;
  hsm: Hsm;
  keys: ListenerKeys;
  hubKeys: HubKeyStore;
  targets: Map<string, Target>;
  /**
   * Targets with KEKs of their own (issue 12), for the target-KEK exchange: a PKCS#11 target with a token of its own (that
   * token's keys), and every keystore and cloud target (its transit keys in the listener's own token, targets/transit-keys.ts).
   */
  targetTokens: Map<string, TargetToken>;
  logger: Logger;
  /** Metrics of this process; `run` exposes them, the one-shot commands simply drop them. */
  registry: Registry;
  /** NATS credentials (own JWT or bootstrap) and the servers' CA. */
  nats: ListenerNatsAccess;
  close(): Promise<void>;
}

/** The listener's composition root: config, HSM, keys and targets are wired here and nowhere else. */
export async function openListenerRuntime(home: string, logger: Logger = createLogger('keyhub-listener')): Promise<ListenerRuntime> {
  // Checked (and tightened) at every start, before anything in it is read.
  secureHome(home, logger);
  const config = loadListenerConfig(home);
  const registry = createMetricsRegistry();
  // Wrapped at the root, so the keys, the targets and the inbox are all timed without knowing it.
  const hsm: Hsm = new InstrumentedHsm(await Pkcs11Hsm.open(config.hsm), registry);
  const keys = new ListenerKeys(hsm);
  const hubKeys = new HubKeyStore(home, config.hubFingerprint);
  // A pkcs11 target without `hsm` is the listener's own token, where the root KEK lives: keys are unwrapped straight into it.
  // One with `hsm` is another token (its own module, PIN and KWP code): keys are unwrapped there, under that token's own KEK.
  const targets = new Map<string, Target>();
  const targetTokens = new Map<string, TargetToken>();
  const connections: TargetTokenConnection[] = [];
  try {
    for (const t of config.targets) {
      if (t.kind !== 'pkcs11') {
        // A keystore or a cloud: keys come under a transit KEK of its own in the listener's token (`target request`), read out for the write.
        const { target, keys: transitKeys } = transitTarget(t, hsm, { home, logger });
        targets.set(t.name, target);
        targetTokens.set(t.name, { config: t, keys: transitKeys });
        continue;
      }
      if (!t.hsm) {
        targets.set(t.name, new Pkcs11Target(t.name, hsm, keys, t.labelPrefix));
        continue;
      }
      if (t.hsm.module === config.hsm.module && t.hsm.tokenLabel === config.hsm.tokenLabel) {
        throw new KeyhubError('CONFIG_INVALID', `target ${t.name} names the listener's own token; leave its hsm out instead`);
      }
      // Opened now if it can be; a target HSM that is not there yet is opened at its first use (target-token.ts).
      const token = new TargetTokenConnection(t, logger);
      connections.push(token);
      await token.openAtStart();
      targetTokens.set(t.name, token);
      targets.set(t.name, new TokenTarget(t.name, token));
    }
  } catch (err) {
    for (const c of connections) await c.close().catch(() => undefined);
    await hsm.close();
    throw err;
  }
  const nats: ListenerNatsAccess = { credentials: new ListenerNatsCredentials(home, config.id), hubKeys, ...(config.nats.caFile ? { tlsCa: readFileSync(config.nats.caFile, 'utf8') } : {}) };
  const close = async (): Promise<void> => {
    for (const c of connections) await c.close().catch(() => undefined);
    await hsm.close();
  };
  return { home, config, hsm, keys, hubKeys, targets, targetTokens, logger, registry, nats, close };
}

/** Creates (or reuses) the identity and transport keys and sends a signed enrollment request. */
export async function enroll(rt: ListenerRuntime): Promise<{ fingerprint: string; createdKeys: boolean }> {
  const { created } = await rt.keys.ensureEnrollmentKeys(rt.config.transportKeyBits);
  const request: EnrollmentRequest = {
    type: MESSAGE_TYPES.enrollmentRequest,
    id: randomUUID(),
    listenerId: rt.config.id,
    issuedAt: new Date().toISOString(),
    identityKey: (await rt.keys.identitySpki()).toString('base64'),
    transportKey: (await rt.keys.transportSpki()).toString('base64'),
    oaepHash: rt.config.oaepHash,
    // Targets in other tokens are not reported here: each joins with its own KEK (`target request` and an operator's approval),
    // so the hub never wraps a package for one under the root KEK, which is not in its token. Keystore and cloud targets are
    // reported with their kinds; they import only once their transit KEK is in (`target request` too).
    targets: rt.config.targets.filter((t) => !hsmOf(t)).map((t) => ({ name: t.name, kind: t.kind })),
    hostname: hostname().slice(0, 128),
    natsUserKey: rt.nats.credentials!.ensureUserKey(),
  };
  const envelope = await rt.keys.sign(request);
  const bus = await ListenerBus.connect(rt.config.nats.servers, rt.config.id, rt.logger, rt.nats);
  try {
    await bus.publishUp('enroll', envelope);
  } finally {
    await bus.close();
  }
  return { fingerprint: await rt.keys.enrollmentFingerprint(rt.config.id, request.natsUserKey), createdKeys: created };
}
