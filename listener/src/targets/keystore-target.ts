import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { KEY_ALGORITHM_INFO, type KeyAlgorithm, type KeyUsage } from '@keyhub/protocol';
import { KeyhubError, KeyedLock } from '@keyhub/shared';
import { KeystoreFile } from './keystore';
import { keystoreAlias, type KeystoreEntryInput, type KeystoreType, type SecretKeyAlgorithm } from './keystore/keystore-types';
import type { ImportRequest, ImportResult, InventoryItem, KeyRef, LifecycleEffect, Target, TargetHealth } from './target';
import { packagePublicKey } from './pkcs11-key-types';
import { assertTargetKind, TransitExporter, unwrapChecked } from './transit-import';
import type { TransitKeys } from './transit-keys';

/** Java's names for the secret keys a keystore can hold (key pairs go in as private keys with their certificate chain). */
const JAVA_ALGORITHMS: Partial<Record<KeyAlgorithm, SecretKeyAlgorithm>> = {
  'AES-128': 'AES',
  'AES-192': 'AES',
  'AES-256': 'AES',
  'TDES-2KEY': 'DESede',
  'TDES-3KEY': 'DESede',
  'HMAC-SHA256': 'HmacSHA256',
  'HMAC-SHA384': 'HmacSHA384',
  'HMAC-SHA512': 'HmacSHA512',
};

export interface KeystoreTargetSettings {
  type: KeystoreType;
  path: string;
  /** Read at every open, so a corrected password file takes effect without a restart. */
  password: () => string;
  pkcs12KeyIterations: number;
  pkcs12MacIterations: number;
  jceksIterations: number;
  /**
   * Where the target keeps which alias holds which key id and version (the
   * lifecycle commands name keys by id): a small JSON file in the listener
   * home, nothing secret in it, never beside the keystore.
   */
  indexPath: string;
  /**
   * Imports this target takes at once (the listener's consumer takes this
   * many messages more than its importConcurrency; keystoreImportSlots()
   * when absent). A rewrite takes at most half of them, so the next batch is
   * unwrapped and read out while the previous one is protected and written.
   */
  importSlots?: number;
  /** Sees every buffer that held clear key material, right after it was zero-filled (tests). */
  onWiped?: (wiped: readonly Buffer[]) => void;
}

interface Op {
  ref: KeyRef;
  alias: string;
  /** An entry to write, or (absent) the alias to remove. */
  entry?: KeystoreEntryInput;
  kcv?: string;
  done: (r: { written: boolean; removed: boolean }) => void;
  fail: (err: unknown) => void;
}

/**
 * A Java keystore file (PKCS#12 or JCEKS) as a target. A package is
 * unwrapped under this target's transit KEK as a session object in the
 * listener's token, its KCV checked there, then read out (transit-import.ts)
 * and written as the entry `<key name>.v<version>` (lower case, as Java
 * keeps aliases): a secret key as a SecretKeyEntry, a key pair (RSA, EC) as
 * a PrivateKeyEntry holding its PKCS#8 and the certificate chain the hub
 * sent with it, checked against the package's public key before anything is
 * unwrapped (certificateChainOf). Clear bytes exist from the read-out to the
 * end of the rewrite that takes them and are wiped then, written or not.
 *
 * Writes coalesce: a put or removal arriving while a rewrite runs waits for
 * the next one, which takes everything queued by then, so a backlog of N
 * keys costs a few rewrites, not N. A rewrite keeps existing entries exactly
 * as they are protected (keystore/README.md), and the file is reopened if
 * someone else replaced it since our last write (an operator's keytool), so
 * their change is kept rather than overwritten.
 *
 * Lifecycle: a keystore has no usage flags, and every application that reads
 * the file can use every entry in it. So the only control that holds is
 * removal: suspend, deactivate, compromise and destroy each REMOVE the entry
 * (effect `destroyed`; the hub then counts this copy as gone, and a resumed
 * key comes back by a new delivery). Deactivate cannot leave a
 * "decrypt-only" key here: a site that must still decrypt old data with a
 * deactivated key holds it in an HSM target instead. Resume finds the entry
 * (`usages_restored`: nothing was ever restricted) or not (`absent`).
 *
 * Idempotence: an alias already in the file is `already_present` once the
 * package's key has passed its KCV check in the token, if the target's index
 * says it wrote that alias for this key id and version; any other entry
 * under the alias (a key whose name differs only in case, an entry someone
 * else wrote) is TARGET_OBJECT_MISMATCH and stays as it is. The target does
 * not read entries back (that would decrypt every entry with the password).
 */
export class KeystoreTarget implements Target {
  readonly kind = 'keystore';
  private file?: KeystoreFile;
  /** Inode, size and mtime of the file as we last read or wrote it. */
  private stamp?: string;
  private queue: Op[] = [];
  /** The aliases of `file` as last read or written. */
  private aliases = new Set<string>();
  private draining?: Promise<void>;
  /** Imports between their start and their put (unwrapping, checking, reading out): a rewrite waits a moment for them. */
  private preparing = 0;
  private wake?: () => void;
  private readonly locks = new KeyedLock();
  private readonly exporter: TransitExporter;
  /** Imports taken at once (Target.importSlots): the inbox gates this target's imports with it, the consumer adds it to its in-flight. */
  readonly importSlots: number;
  /** Most entries one rewrite takes. */
  private readonly maxBatch: number;

  constructor(
    readonly name: string,
    private readonly keys: TransitKeys,
    private readonly settings: KeystoreTargetSettings,
  ) {
    this.exporter = new TransitExporter(settings.onWiped);
    this.importSlots = settings.importSlots ?? keystoreImportSlots(settings);
    this.maxBatch = Math.max(1, Math.ceil(this.importSlots / 2));
  }

  import(req: ImportRequest): Promise<ImportResult> {
    return this.serialized({ keyId: req.key.id, version: req.key.version }, () => this.importOnce(req));
  }

  private async importOnce(req: ImportRequest): Promise<ImportResult> {
    this.preparing++;
    let prepared = false;
    const done = (): void => {
      if (prepared) return;
      prepared = true;
      this.preparing--;
      if (this.preparing === 0) this.wake?.();
    };
    try {
      return await this.importPrepared(req, done);
    } finally {
      done();
    }
  }

  private async importPrepared(req: ImportRequest, prepared: () => void): Promise<ImportResult> {
    const pair = KEY_ALGORITHM_INFO[req.key.algorithm]?.keyClass === 'private';
    const algorithm = JAVA_ALGORITHMS[req.key.algorithm];
    if (!pair && !algorithm) {
      throw new KeyhubError('TARGET_KIND_NOT_ALLOWED', `a keystore target takes AES, TDES, HMAC keys and RSA / EC key pairs; ${req.key.algorithm} is not written to keystore ${this.name}`);
    }
    const alias = keystoreAlias(req.key.name, req.key.version);
    // A key pair's chain is checked before anything is unwrapped: without one (or with one for another key) nothing leaves the token.
    let chain: Buffer[] | undefined;
    if (pair) {
      assertTargetKind(this.keys, req, this.kind);
      chain = certificateChainOf(req, this.name);
    }
    const hsm = this.keys.hsm;
    const handle = await unwrapChecked(this.keys, req, this.kind);
    let key: Buffer;
    try {
      if ((await this.present()).has(alias)) {
        // Ours for this very version (the index says so): already there. Anything else under the alias (another key whose name
        // differs only in case, Java lower-cases aliases; an entry someone else put there) is not this key: refused, left alone.
        if (this.refs.get(refKey({ keyId: req.key.id, version: req.key.version })) === alias) return { outcome: 'already_present', kcv: req.key.kcv };
        throw new KeyhubError('TARGET_OBJECT_MISMATCH', `keystore ${this.name} holds an entry ${alias} that this listener did not write for this key version`);
      }
      // Secret keys raw; a private key as PKCS#8, proven in the token (unwrapChecked) to sign for the package's public key.
      key = await this.exporter.export(hsm, handle, req);
    } finally {
      await hsm.destroy(handle).catch(() => undefined);
    }
    let entry: KeystoreEntryInput;
    if (chain) {
      entry = { kind: 'privateKey', alias, pkcs8: key, chain };
    } else {
      if (req.key.algorithm === 'TDES-2KEY') {
        // Java's DESede takes 24 bytes: K1 K2 K1 is the same two-key TDES key (the same KCV).
        const k24 = Buffer.concat([key, key.subarray(0, 8)]);
        key.fill(0);
        this.settings.onWiped?.([key]);
        key = k24;
      }
      entry = { kind: 'secretKey', alias, algorithm: algorithm!, key };
    }
    const written = this.enqueue({ ref: { keyId: req.key.id, version: req.key.version }, alias, entry, kcv: req.key.kcv });
    prepared();
    await written;
    return { outcome: 'imported', kcv: req.key.kcv };
  }

  /** Removes the version's entry; false when there was none. */
  async destroy(ref: KeyRef): Promise<boolean> {
    return this.serialized(ref, () => this.removeEntry(ref));
  }

  async disable(ref: KeyRef): Promise<boolean> {
    return (await this.aliasOf(ref)) !== undefined;
  }

  suspend(ref: KeyRef): Promise<LifecycleEffect> {
    return this.removeAsEffect(ref);
  }

  async resume(ref: KeyRef, _usages: KeyUsage[]): Promise<LifecycleEffect> {
    return (await this.aliasOf(ref)) ? 'usages_restored' : 'absent';
  }

  deactivate(ref: KeyRef, _usages: KeyUsage[]): Promise<LifecycleEffect> {
    return this.removeAsEffect(ref);
  }

  compromise(ref: KeyRef): Promise<LifecycleEffect> {
    return this.removeAsEffect(ref);
  }

  private async removeAsEffect(ref: KeyRef): Promise<LifecycleEffect> {
    return (await this.serialized(ref, () => this.removeEntry(ref))) ? 'destroyed' : 'absent';
  }

  private async removeEntry(ref: KeyRef): Promise<boolean> {
    const alias = await this.aliasOf(ref);
    if (!alias) return false;
    const r = await this.enqueue({ ref, alias });
    return r.removed;
  }

  /**
   * The alias of a version in the file: a command names the key by id and
   * version, and the alias by name, so the index of what we wrote says which.
   */
  private async aliasOf(ref: KeyRef): Promise<string | undefined> {
    const present = await this.present();
    const known = this.refs.get(refKey(ref));
    if (known && present.has(known)) return known;
    return undefined;
  }

  /** Aliases we wrote by key id and version (settings.indexPath). */
  private refs = new Map<string, string>();
  private refsLoaded = false;

  private async loadRefs(): Promise<void> {
    if (this.refsLoaded) return;
    try {
      const raw = JSON.parse(await fs.readFile(this.refsPath, 'utf8')) as Record<string, string>;
      for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') this.refs.set(k, v);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw new KeyhubError('KEYSTORE_CORRUPT', `the alias index ${this.refsPath} cannot be read`, { cause: err });
    }
    this.refsLoaded = true;
  }

  private get refsPath(): string {
    return this.settings.indexPath;
  }

  private async saveRefs(): Promise<void> {
    const tmp = path.join(path.dirname(this.refsPath), `.${path.basename(this.refsPath)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await fs.open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o600);
    try {
      await handle.writeFile(JSON.stringify(Object.fromEntries(this.refs)));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, this.refsPath);
  }

  /** The open keystore, reopened (password read again) when it was never opened, failed to open, or was replaced by someone else. */
  private async current(): Promise<KeystoreFile> {
    await this.loadRefs();
    const now = await this.fileStamp();
    if (this.file && now === this.stamp) return this.file;
    this.file = undefined;
    const s = this.settings;
    const file = await KeystoreFile.open(s.path, {
      type: s.type,
      password: s.password(),
      pkcs12KeyIterations: s.pkcs12KeyIterations,
      pkcs12MacIterations: s.pkcs12MacIterations,
      jceksIterations: s.jceksIterations,
      onWiped: s.onWiped,
    });
    this.file = file;
    this.stamp = now;
    this.aliases = new Set(file.list().map((e) => e.alias));
    return file;
  }

  /** The aliases in the file (kept up to date by our rewrites: listing a large file for every import would cost more than the import). */
  private async present(): Promise<ReadonlySet<string>> {
    await this.current();
    return this.aliases;
  }

  private async fileStamp(): Promise<string> {
    try {
      const st = await stat(this.settings.path);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return 'absent';
      throw new KeyhubError('KEYSTORE_NOT_WRITABLE', `keystore ${path.basename(this.settings.path)} cannot be read (${(err as { code?: string }).code ?? 'error'})`, { cause: err });
    }
  }

  /** Queues a put or removal for the next rewrite; resolves once a rewrite that holds it is on disk. */
  private enqueue(op: Omit<Op, 'done' | 'fail'>): Promise<{ written: boolean; removed: boolean }> {
    return new Promise((done, fail) => {
      this.queue.push({ ...op, done, fail });
      if (this.queue.length >= this.maxBatch) this.wake?.();
      this.draining ??= this.drain().finally(() => (this.draining = undefined));
    });
  }

  /**
   * One rewrite per round, of everything queued when the round starts. A
   * round first waits (at most COALESCE_MS) for imports already being
   * prepared, so keys that arrive together are written together: the
   * listener imports a few packages at a time, and without the wait each
   * rewrite would take only the first of them.
   */
  private async drain(): Promise<void> {
    while (this.queue.length) {
      if (this.preparing > 0 && this.queue.length < this.maxBatch) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, COALESCE_MS);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
      const batch = this.queue.splice(0, this.maxBatch);
      let file: KeystoreFile | undefined;
      try {
        file = await this.current();
        const removed = batch.map((op) => !op.entry && this.aliases.has(op.alias));
        for (const op of batch) {
          if (op.entry) file.put([op.entry]);
          else file.remove([op.alias]);
        }
        await file.commit();
        this.stamp = await this.fileStamp();
        for (const op of batch) {
          if (op.entry) {
            this.aliases.add(op.alias);
            this.refs.set(refKey(op.ref), op.alias);
          } else {
            this.aliases.delete(op.alias);
            this.refs.delete(refKey(op.ref));
          }
        }
        await this.saveRefs();
        batch.forEach((op, i) => op.done({ written: true, removed: removed[i] }));
      } catch (err) {
        // The entries' clear bytes: wiped by the failed commit, or here if it never started; the package comes again.
        file?.discard();
        const clear = batch.flatMap((op) => (op.entry ? [op.entry.kind === 'secretKey' ? op.entry.key : op.entry.pkcs8] : []));
        for (const b of clear) b.fill(0);
        this.settings.onWiped?.(clear);
        // Reopen next time: what failed may have left our view of the file behind it.
        this.file = undefined;
        for (const op of batch) op.fail(err);
      }
    }
  }

  async inventory(): Promise<InventoryItem[]> {
    const file = await this.current();
    const byAlias = new Map([...this.refs].map(([k, alias]) => [alias, k]));
    const items: InventoryItem[] = [];
    for (const e of file.list()) {
      const k = byAlias.get(e.alias);
      if (!k || e.kind === 'trustedCertificate') continue;
      const [keyId, version] = k.split('/');
      items.push({ keyId, version: Number(version), label: e.alias, algorithm: e.kind === 'secretKey' ? 'SECRET' : 'PRIVATE_KEY', enabled: true });
    }
    return items;
  }

  /** Readable and writable (the file, or its directory for a new one), and the password opens it. */
  async health(): Promise<TargetHealth> {
    try {
      const exists = (await this.fileStamp()) !== 'absent';
      await fs.access(exists ? this.settings.path : path.dirname(this.settings.path), fsConstants.R_OK | fsConstants.W_OK);
      await fs.access(path.dirname(this.settings.path), fsConstants.W_OK);
      await this.current();
      return { healthy: true };
    } catch (err) {
      const e = KeyhubError.from(err);
      return { healthy: false, detail: e.code === 'INTERNAL' && (err as { code?: string }).code ? 'KEYSTORE_NOT_WRITABLE' : e.code };
    }
  }

  private serialized<T>(ref: KeyRef, work: () => Promise<T>): Promise<T> {
    return this.locks.run(refKey(ref), work);
  }
}

const refKey = (ref: KeyRef): string => `${ref.keyId}/${ref.version}`;

/** Longest chain taken (the hub stores at most 5: leaf, issuers, root). */
const MAX_CHAIN = 10;

/**
 * The chain a key pair's entry is written with (DER, leaf first), checked:
 * present (CERTIFICATE_REQUIRED: Java holds no private key without one, and
 * an entry with a made-up certificate would surprise whoever reads the
 * file), each certificate parses and is signed by the next one
 * (CERTIFICATE_CHAIN_INVALID), and the leaf certifies exactly the package's
 * public key (CERTIFICATE_KEY_MISMATCH), the one the private key is then
 * proven to sign for in the token. Validity dates are the hub's business:
 * it issues and stores chains, and a rotated key brings a new one.
 */
function certificateChainOf(req: ImportRequest, target: string): Buffer[] {
  const b64 = req.key.certificateChain ?? [];
  if (b64.length === 0) {
    throw new KeyhubError(
      'CERTIFICATE_REQUIRED',
      `key pair ${req.key.name} v${req.key.version} has no certificate chain, and keystore ${target} takes a private key only with its chain: run \`keyhub key certificate ${req.key.name}\` (or import one), then distribute again`,
    );
  }
  if (b64.length > MAX_CHAIN) throw new KeyhubError('CERTIFICATE_CHAIN_INVALID', `the certificate chain of ${req.key.name} has ${b64.length} certificates (at most ${MAX_CHAIN})`);
  const ders = b64.map((c) => Buffer.from(c, 'base64'));
  let certs: X509Certificate[];
  try {
    certs = ders.map((der) => new X509Certificate(der));
  } catch (err) {
    throw new KeyhubError('CERTIFICATE_CHAIN_INVALID', `the certificate chain of ${req.key.name} holds something that is not a DER certificate`, { cause: err });
  }
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!certs[i].verify(certs[i + 1].publicKey)) throw new KeyhubError('CERTIFICATE_CHAIN_INVALID', `certificate ${i} of the chain of ${req.key.name} is not signed by certificate ${i + 1}`);
  }
  const { spki } = packagePublicKey(req);
  if (!certs[0].publicKey.export({ type: 'spki', format: 'der' }).equals(spki)) {
    throw new KeyhubError('CERTIFICATE_KEY_MISMATCH', `the leaf certificate of the chain of ${req.key.name} v${req.key.version} certifies another public key than the package's`);
  }
  return ders;
}

/** Longest a rewrite waits for imports being prepared to join it. */
const COALESCE_MS = 50;

/** What one rewrite's new entries may cost in PBE, so that a message in flight waits seconds, not its ack deadline. */
const BATCH_BUDGET_MS = 5_000;
/**
 * Rough PBE cost of one new entry per 10,000 iterations, measured on the
 * project's 2-core machine with some margin: PKCS#12 PBKDF2-HMAC-SHA256
 * (libuv's pool) about 2.5 ms, JCEKS PBEWithMD5AndTripleDES (two chains,
 * on the event loop) about 75 ms.
 */
const ENTRY_MS_PER_10K = { pkcs12: 2.5, jceks: 75 } as const;
const MAX_IMPORT_SLOTS = 128;

/**
 * The default importSlots: a rewrite takes half of them, so that with the
 * next half being prepared meanwhile the PBE of a batch costs about
 * BATCH_BUDGET_MS at most: 128 for PKCS#12 and for JCEKS at the default
 * 10,000 iterations, 6 for JCEKS at Java's 200,000. Never below 4 (what the
 * listener took before keystores had slots of their own).
 */
export function keystoreImportSlots(s: Pick<KeystoreTargetSettings, 'type' | 'pkcs12KeyIterations' | 'jceksIterations'>): number {
  const iterations = s.type === 'pkcs12' ? s.pkcs12KeyIterations : s.jceksIterations;
  const entryMs = (ENTRY_MS_PER_10K[s.type] * iterations) / 10_000;
  return Math.max(4, Math.min(MAX_IMPORT_SLOTS, 2 * Math.floor(BATCH_BUDGET_MS / entryMs)));
}
