import { CeremonyStore } from '@keyhub/listener/dist/state/ceremony';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  AUDIT_CHECKPOINT_TYPE,
  canonicalBytes,
  checkpointDigest,
  encodeEnvelope,
  MESSAGE_TYPES,
  type AuditCheckpointMessage,
  type KeyPackage,
  type Message,
  type RootKekMessage,
  type SignedEnvelope,
} from '@keyhub/protocol';
import { aesKcv, createLogger, Pkcs11Hsm, type Hsm, type KeyHandle, type Logger } from '@keyhub/shared';
import { HubKeyring } from '@keyhub/hub/dist/crypto/hub-keyring';
import { CheckpointWitness } from '@keyhub/listener/dist/checkpoint-witness';
import { Inbox } from '@keyhub/listener/dist/inbox';
import { ListenerKeys, TRANSPORT_LABEL } from '@keyhub/listener/dist/listener-keys';
import { CheckpointStore } from '@keyhub/listener/dist/state/checkpoints';
import { HubKeyStore } from '@keyhub/listener/dist/state/hub-key';
import { Journal } from '@keyhub/listener/dist/state/journal';
import { CommandHandler } from '@keyhub/listener/dist/commands/command-handler';
import { CommandJournal } from '@keyhub/listener/dist/state/command-journal';
import { Tombstones } from '@keyhub/listener/dist/state/tombstones';
import { Pkcs11Target } from '@keyhub/listener/dist/targets/pkcs11-target';
import type { TargetKekDeps } from '@keyhub/listener/dist/targets/target-keks';
import { useSoftHsm } from '../../bench/softhsm-env';
import { createSoftHsm, makeTempDir, type SoftHsmEnv, type TempDir } from '../../env';

export const SITE = 'site-a';
export const OTHER_SITE = 'site-b';

/** What the listener sent up, as its bus would have published it. */
export interface Published {
  kind: string;
  envelope: SignedEnvelope<Message>;
}

/** Verified packages the hub may still sign wrongly (a hub bug, a tampered row): each earns a signed refusal with its code. */
export const VERIFIED_BAD = {
  wrongListener: { outcome: 'rejected', code: 'PACKAGE_WRONG_LISTENER', journaled: false },
  expired: { outcome: 'rejected', code: 'PACKAGE_EXPIRED', journaled: true },
  unknownTarget: { outcome: 'rejected', code: 'TARGET_UNKNOWN', journaled: true },
  unknownKek: { outcome: 'failed', code: 'KEK_UNKNOWN', journaled: true },
  wrongKcv: { outcome: 'failed', code: 'KCV_MISMATCH', journaled: true },
  garbageBlob: { outcome: 'failed', code: 'UNWRAP_FAILED', journaled: true },
  usageConflict: { outcome: 'rejected', code: 'KEY_USAGE_CONFLICT', journaled: true },
  blobTooShort: { outcome: 'failed', code: 'KEY_LENGTH_INVALID', journaled: true },
  lengthNotAlgorithm: { outcome: 'failed', code: 'KEY_LENGTH_INVALID', journaled: true },
} as const;
export type VerifiedBad = keyof typeof VERIFIED_BAD;

/**
 * A listener in this process, driven the way its agent drives it: the real
 * inbox, checkpoint witness, journal, hub-key pin and PKCS#11 target on a
 * SoftHSM2 token of its own; and, on a second token, the hub's side: the
 * real hub keyring (signing key in the token) and a root KEK that reaches
 * the site by the real RSA-OAEP exchange. Only the bus is replaced, by a
 * list of what would have been published.
 */
export class FuzzSite {
  signs = 0;
  private streamSeq = 0;
  private packageSeq = 0;
  private checkpoint = { seq: 0, digest: '0'.repeat(64) };
  readonly kekId = randomUUID();
  kekKcv = '';

  private constructor(
    readonly soft: SoftHsmEnv,
    private readonly restoreEnv: () => void,
    readonly hubHsm: Hsm,
    readonly siteHsm: Hsm,
    readonly keyring: HubKeyring,
    readonly keys: ListenerKeys,
    readonly home: TempDir,
    readonly hubKeys: HubKeyStore,
    readonly journal: Journal,
    readonly store: CheckpointStore,
    readonly target: Pkcs11Target,
    readonly inbox: Inbox,
    private readonly kek: KeyHandle,
    readonly logger: Logger,
    readonly published: Published[],
    readonly logs: string[],
  ) {}

  static async create(): Promise<FuzzSite> {
    const soft = await createSoftHsm(['fuzz-hub', 'fuzz-site']);
    const restoreEnv = useSoftHsm(soft, { KEYHUB_FUZZ_HUB_PIN: 'fuzz-hub', KEYHUB_FUZZ_SITE_PIN: 'fuzz-site' });
    const hubHsm = await Pkcs11Hsm.open({ module: soft.modulePath, tokenLabel: 'fuzz-hub', pinEnv: 'KEYHUB_FUZZ_HUB_PIN', sessions: 2 });
    const siteHsm = await Pkcs11Hsm.open({ module: soft.modulePath, tokenLabel: 'fuzz-site', pinEnv: 'KEYHUB_FUZZ_SITE_PIN', sessions: 2 });
    const { keyring } = await HubKeyring.ensure(hubHsm);
    // The root KEK as approval makes it (a session object of the hub token), here kept for the whole test to wrap packages under.
    const kek = await hubHsm.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
    const keys = new ListenerKeys(siteHsm);
    await keys.ensureEnrollmentKeys(2048);
    const home = await makeTempDir('fuzz-site');
    const hubKeys = new HubKeyStore(home.path, keyring.fingerprint);
    const journal = Journal.open(home.path);
    const store = CheckpointStore.open(home.path);
    const target = new Pkcs11Target('hsm', siteHsm, keys, 'fuzz.');
    const logs: string[] = [];
    const logger = createLogger('fuzz-listener', 'debug', { write: (line: string) => void logs.push(line) });
    const published: Published[] = [];
    const bus = { publishUp: async (kind: string, envelope: SignedEnvelope<Message>) => void published.push({ kind, envelope }) };
    const inbox = new Inbox(SITE, keys, hubKeys, journal, new Map([['hsm', target]]), bus as ConstructorParameters<typeof Inbox>[5], logger);
    inbox.witness = new CheckpointWitness(store, hubKeys, logger);
    inbox.ceremonies = { listenerId: SITE, keys, hubKeys, store: new CeremonyStore(home.path), logger };
    // Lifecycle commands as the agent wires them (commands/command-handler.ts).
    const tombstones = Tombstones.open(home.path);
    inbox.tombstones = tombstones;
    // Per-target KEKs as the agent wires them; this site has no target with a token of its own.
    inbox.targetKeks = { listenerId: SITE, keys, hubKeys, tokens: new Map(), bus: bus as TargetKekDeps['bus'], logger, now: () => new Date() };
    inbox.commands = new CommandHandler(SITE, keys, hubKeys, CommandJournal.open(home.path), tombstones, new Map([['hsm', target]]), bus as ConstructorParameters<typeof CommandHandler>[6], logger);
    const site = new FuzzSite(soft, restoreEnv, hubHsm, siteHsm, keyring, keys, home, hubKeys, journal, store, target, inbox, kek, logger, published, logs);
    site.kekKcv = await aesKcv(hubHsm, kek);
    // Every signature the listener makes is counted: unverified input must earn none.
    const sign = keys.sign.bind(keys);
    keys.sign = (<M extends Message>(payload: M) => {
      site.signs++;
      return sign(payload);
    }) as ListenerKeys['sign'];
    return site;
  }

  async close(): Promise<void> {
    this.journal.close();
    await this.hubHsm.destroy(this.kek).catch(() => undefined);
    await this.siteHsm.close();
    await this.hubHsm.close();
    this.restoreEnv();
    await this.home.remove();
    await this.soft.cleanup();
  }

  nextStreamSeq(): number {
    return ++this.streamSeq;
  }

  /** The root-KEK message approval would queue: the KEK wrapped (RSA-OAEP) to this site's transport key, signed by the hub. */
  async rootKekMessage(): Promise<SignedEnvelope<RootKekMessage>> {
    const transport = await this.hubHsm.importRsaWrappingKey(await this.keys.transportSpki());
    try {
      const blob = await this.hubHsm.wrapRsaOaep(transport, this.kek, 'sha1');
      return this.keyring.sign<RootKekMessage>({
        type: MESSAGE_TYPES.rootKek,
        id: randomUUID(),
        listenerId: SITE,
        issuedAt: new Date().toISOString(),
        hubKey: this.keyring.signingSpki.toString('base64'),
        kek: { id: this.kekId, version: 1, kcv: this.kekKcv, mechanism: 'RSA-OAEP', oaepHash: 'sha1', blob: blob.toString('base64') },
      });
    } finally {
      await this.hubHsm.destroy(transport);
    }
  }

  /** A key package as the hub issues it (a fresh AES key of the hub token, AES-KWP under the root KEK), or one of the verified-bad variants. */
  async packagePayload(variant?: VerifiedBad): Promise<KeyPackage> {
    const length = variant === 'lengthNotAlgorithm' ? 16 : 32;
    const key = await this.hubHsm.generateAesKey(length, { token: false, extractable: true, sign: true });
    let kcv: string;
    let blob: Buffer;
    try {
      kcv = await aesKcv(this.hubHsm, key);
      blob = await this.hubHsm.wrapKwp(this.kek, key);
    } finally {
      await this.hubHsm.destroy(key);
    }
    const now = new Date();
    const pkg: KeyPackage = {
      type: MESSAGE_TYPES.keyPackage,
      id: randomUUID(),
      listenerId: variant === 'wrongListener' ? OTHER_SITE : SITE,
      target: variant === 'unknownTarget' ? 'nope' : 'hsm',
      distributionId: randomUUID(),
      sequence: ++this.packageSeq,
      issuedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + (variant === 'expired' ? -1_000 : 3_600_000)).toISOString(),
      key: {
        id: randomUUID(),
        name: `fuzz-${this.packageSeq}`,
        version: 1,
        algorithm: 'AES-256',
        length,
        usages: variant === 'usageConflict' ? ['wrap', 'decrypt'] : ['encrypt', 'decrypt'],
        exportable: false,
        kcv: variant === 'wrongKcv' ? (kcv === '000000' ? '000001' : '000000') : kcv,
      },
      wrapping: {
        kekId: variant === 'unknownKek' ? randomUUID() : this.kekId,
        kekVersion: 1,
        mechanism: 'AES-KWP',
        blob: (variant === 'garbageBlob' ? randomBytes(blob.length) : variant === 'blobTooShort' ? blob.subarray(0, blob.length - 8) : blob).toString('base64'),
      },
    };
    return pkg;
  }

  /** Signs as the hub: one ES256 signature each, or one batch signature over all of them (ES256-MERKLE). */
  async hubSign<M extends Message>(payloads: M[], merkle: boolean): Promise<Array<SignedEnvelope<M>>> {
    return merkle && payloads.length > 1 ? this.keyring.signBatch(payloads) : Promise.all(payloads.map((p) => this.keyring.sign(p)));
  }

  /** The hub's next audit checkpoint, chained to the previous one, signed by the hub key. */
  async nextCheckpoint(): Promise<SignedEnvelope<AuditCheckpointMessage>> {
    const seq = this.checkpoint.seq + 1 + Math.floor(Math.random() * 5);
    const payload: AuditCheckpointMessage = {
      type: AUDIT_CHECKPOINT_TYPE,
      seq,
      hash: randomBytes(32).toString('hex'),
      at: new Date().toISOString(),
      prevSeq: this.checkpoint.seq,
      prevDigest: this.checkpoint.digest,
    };
    const env = await this.keyring.sign(payload);
    this.checkpoint = { seq, digest: checkpointDigest({ ...payload, signature: env.signature.value }) };
    return env;
  }

  /** Objects in the site token: token objects and session objects. */
  async objectCounts(): Promise<{ token: number; session: number }> {
    return { token: (await this.siteHsm.findKeys({ token: true })).length, session: (await this.siteHsm.findKeys({ token: false })).length };
  }

  async transportKeyPresent(): Promise<boolean> {
    return (await this.siteHsm.findKeys({ class: 'private', label: TRANSPORT_LABEL, token: true })).length > 0;
  }

  /** Everything the listener keeps outside the token, by size: what a rejected message must not change. */
  fileState(): Record<string, number> {
    const size = (name: string): number => (existsSync(join(this.home.path, name)) ? statSync(join(this.home.path, name)).size : -1);
    return {
      journalEntries: this.journal.size,
      journalBytes: size('journal.jsonl'),
      checkpoints: this.store.size,
      checkpointBytes: size('checkpoints.jsonl'),
      hubKey: size('hub-key.der'),
      commandBytes: size('commands.jsonl'),
      tombstoneBytes: size('tombstones.jsonl'),
      ceremonyBytes: size('root-kek-ceremony.json'),
    };
  }
}

/** Canonical payload bytes as a map key. */
export function payloadKey(payload: unknown): string {
  return canonicalBytes(payload).toString('base64');
}

export function bytesOf(envelope: SignedEnvelope): Buffer {
  return Buffer.from(encodeEnvelope(envelope));
}
