import { KeyhubError, Pkcs11Hsm, type Hsm, type Logger } from '@keyhub/shared';
import type { KeyUsage } from '@keyhub/protocol';
import type { Pkcs11TargetConfig } from '../config';
import { ListenerKeys } from '../listener-keys';
import { Pkcs11Target } from './pkcs11-target';
import type { ImportRequest, ImportResult, InventoryItem, KeyRef, LifecycleEffect, Target, TargetHealth } from './target';
import type { TargetToken } from './target-keks';

/** Why a target token could not be opened that says "not there (yet)", not "misconfigured": retried, not fatal. */
const ABSENT: ReadonlySet<string> = new Set(['HSM_MODULE_LOAD_FAILED', 'HSM_TOKEN_NOT_FOUND']);

/**
 * The token of a PKCS#11 target other than the listener's own (issue 12),
 * opened when it can be. A target HSM that is missing when the listener
 * starts (its module cannot be loaded, or no token has its label: a network
 * HSM's client not installed, a card not inserted) no longer keeps the
 * listener from starting: the target reports itself unhealthy (heartbeats,
 * readiness), deliveries to it fail with the passing code TARGET_UNAVAILABLE
 * (redelivered, nothing lost), and it is opened again at the next use, at
 * most every `retryMs`. A misconfiguration (a wrong PIN, a bad module) still
 * stops the start, with its own code.
 */
export class TargetTokenConnection implements TargetToken {
  private opened?: { hsm: Hsm; keys: ListenerKeys; target: Pkcs11Target };
  private lastError?: KeyhubError;
  private lastAttempt = 0;
  private opening?: Promise<void>;

  constructor(
    readonly config: Pkcs11TargetConfig,
    private readonly logger: Logger,
    private readonly retryMs = 5_000,
  ) {}

  get available(): boolean {
    return this.opened !== undefined;
  }

  /** The token's keys; TARGET_UNAVAILABLE while it cannot be opened. */
  get keys(): ListenerKeys {
    if (!this.opened) throw this.unavailable();
    return this.opened.keys;
  }

  /** At start: opened if it can be; an absent HSM is logged and left for later, any other failure thrown. */
  async openAtStart(): Promise<void> {
    await this.attempt();
    if (this.lastError && !ABSENT.has(this.lastError.code)) throw this.lastError;
  }

  async target(): Promise<Pkcs11Target> {
    if (!this.opened) {
      if (this.lastError && Date.now() - this.lastAttempt < this.retryMs) throw this.unavailable();
      await (this.opening ??= this.attempt().finally(() => (this.opening = undefined)));
      if (!this.opened) throw this.unavailable();
    }
    return this.opened.target;
  }

  async close(): Promise<void> {
    await this.opened?.hsm.close();
    this.opened = undefined;
  }

  private async attempt(): Promise<void> {
    this.lastAttempt = Date.now();
    const t = this.config;
    try {
      // The worker-thread translator is the hub's batch path; a target token never needs it.
      const hsm = await Pkcs11Hsm.open({ ...t.hsm!, translateWorker: false });
      const keys = new ListenerKeys(hsm);
      this.opened = { hsm, keys, target: new Pkcs11Target(t.name, hsm, keys, t.labelPrefix) };
      if (this.lastError) this.logger.info({ target: t.name }, 'target token opened');
      this.lastError = undefined;
    } catch (err) {
      const e = KeyhubError.from(err);
      if (this.lastError?.code !== e.code) this.logger.warn({ target: t.name, code: e.code, detail: e.message }, 'target token cannot be opened; deliveries to it wait');
      this.lastError = e;
    }
  }

  private unavailable(): KeyhubError {
    return new KeyhubError('TARGET_UNAVAILABLE', `target ${this.config.name}: its token cannot be opened (${this.lastError?.code ?? 'not opened yet'})`);
  }
}

/** A Target over a TargetTokenConnection: every call opens the token first if it must. */
export class TokenTarget implements Target {
  readonly kind = 'pkcs11';

  constructor(
    readonly name: string,
    private readonly token: TargetTokenConnection,
  ) {}

  async import(request: ImportRequest): Promise<ImportResult> {
    return (await this.token.target()).import(request);
  }

  async disable(ref: KeyRef): Promise<boolean> {
    return (await this.token.target()).disable(ref);
  }

  async destroy(ref: KeyRef): Promise<boolean> {
    return (await this.token.target()).destroy(ref);
  }

  async suspend(ref: KeyRef): Promise<LifecycleEffect> {
    return (await this.token.target()).suspend(ref);
  }

  async resume(ref: KeyRef, usages: KeyUsage[]): Promise<LifecycleEffect> {
    return (await this.token.target()).resume(ref, usages);
  }

  async deactivate(ref: KeyRef, usages: KeyUsage[]): Promise<LifecycleEffect> {
    return (await this.token.target()).deactivate(ref, usages);
  }

  async compromise(ref: KeyRef): Promise<LifecycleEffect> {
    return (await this.token.target()).compromise(ref);
  }

  async inventory(): Promise<InventoryItem[]> {
    return (await this.token.target()).inventory();
  }

  async health(): Promise<TargetHealth> {
    try {
      return await (await this.token.target()).health();
    } catch (err) {
      return { healthy: false, detail: KeyhubError.from(err).message };
    }
  }
}
