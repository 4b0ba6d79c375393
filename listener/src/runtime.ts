import 'reflect-metadata';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { MESSAGE_TYPES, type EnrollmentRequest } from '@keyhub/protocol';
import { createLogger, createMetricsRegistry, InstrumentedHsm, Pkcs11Hsm, type Hsm, type Logger, type Registry } from '@keyhub/shared';
import { readFileSync } from 'node:fs';
import { ListenerBus, type ListenerNatsAccess } from './bus/listener-bus';
import { ListenerNatsCredentials } from './bus/nats-credentials';
import { loadListenerConfig, secureHome, type ListenerConfig } from './config';
import { ListenerKeys } from './listener-keys';
import { HubKeyStore } from './state/hub-key';
import { Pkcs11Target } from './targets/pkcs11-target';
import type { Target } from './targets/target';

export interface ListenerRuntime {
  home: string;
  config: ListenerConfig;
  hsm: Hsm;
  keys: ListenerKeys;
  hubKeys: HubKeyStore;
  targets: Map<string, Target>;
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
  // A pkcs11 target is the listener's own token, where the root KEK lives: keys are unwrapped straight into it.
  const targets = new Map<string, Target>(config.targets.map((t) => [t.name, new Pkcs11Target(t.name, hsm, keys, t.labelPrefix)]));
  const nats: ListenerNatsAccess = { credentials: new ListenerNatsCredentials(home, config.id), hubKeys, ...(config.nats.caFile ? { tlsCa: readFileSync(config.nats.caFile, 'utf8') } : {}) };
  return { home, config, hsm, keys, hubKeys, targets, logger, registry, nats, close: () => hsm.close() };
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
    targets: rt.config.targets.map((t) => ({ name: t.name, kind: t.kind })),
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
