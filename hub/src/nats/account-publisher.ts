import { connect, type Authenticator, type NatsConnection } from 'nats';
import type { DataSource } from 'typeorm';
import { KeyhubError, type Logger } from '@keyhub/shared';
import { currentRevocations, revocationsVersion } from '../store/queries/nats-identities';
import type { NatsAuthority } from './nats-authority';
import { HUB_SYSTEM_INBOX_PREFIX } from './permissions';

/**
 * Keeps the NATS servers' copy of the Keyhub account current. Operations
 * record revocations in `nats_revocations` inside their own transactions;
 * this loop notices a change (one cheap query every `pollMs`), signs a new
 * account JWT with the operator key in the HSM, and sends it as the hub's
 * system-account user to `$SYS.REQ.CLAIMS.UPDATE`. The server that takes it
 * stores it in its resolver directory, disconnects clients whose JWT is now
 * revoked, and passes it to the other nodes of its cluster, which do the
 * same; a node that was down gets it when its resolver syncs with its peers
 * on return, and every hub start sends the current one again. Every replica
 * runs the loop; the servers keep the JWT with the newest `iat`, and equal
 * content makes the race harmless.
 */
export class NatsAccountPublisher {
  private nc?: NatsConnection;
  private timer?: NodeJS.Timeout;
  private pushedVersion?: string;
  private stopped = false;
  private running?: Promise<void>;

  constructor(
    private readonly authority: NatsAuthority,
    private readonly ds: DataSource,
    private readonly connection: { servers: string[]; authenticator: Authenticator; tlsCa?: string },
    private readonly logger: Logger,
    private readonly pollMs = 500,
  ) {}

  async start(): Promise<void> {
    try {
      this.nc = await connect({
        servers: this.connection.servers,
        name: 'keyhub-hub-system',
        inboxPrefix: HUB_SYSTEM_INBOX_PREFIX,
        authenticator: this.connection.authenticator,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        timeout: 5000,
        ...(this.connection.tlsCa ? { tls: { ca: this.connection.tlsCa } } : {}),
      });
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', 'cannot connect to NATS as the system account', { cause: err });
    }
    await this.pushIfChanged(true);
    this.schedule();
  }

  /** Sends the account JWT now if the revocations changed since the last successful push (or always, when forced). */
  async pushIfChanged(force = false): Promise<boolean> {
    const version = await revocationsVersion(this.ds);
    if (!force && version === this.pushedVersion) return false;
    const jwt = await this.authority.accountJwt(await currentRevocations(this.ds));
    const nc = this.nc;
    if (!nc) throw new KeyhubError('BUS_UNAVAILABLE', 'the account publisher is not connected');
    let answer: { data?: { code?: number; message?: string }; error?: { code?: number; description?: string } };
    try {
      const reply = await nc.request('$SYS.REQ.CLAIMS.UPDATE', new TextEncoder().encode(jwt), { timeout: 5000 });
      answer = JSON.parse(new TextDecoder().decode(reply.data)) as typeof answer;
    } catch (err) {
      throw new KeyhubError('BUS_UNAVAILABLE', 'NATS did not take the account update', { cause: err });
    }
    if (answer.error || answer.data?.code !== 200) {
      throw new KeyhubError('BUS_UNAVAILABLE', `NATS refused the account update: ${answer.error?.description ?? answer.data?.message ?? 'no answer'}`);
    }
    this.pushedVersion = version;
    this.logger.info({ event: 'nats_account_pushed', revocations: version }, 'NATS account updated');
    return true;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pushIfChanged()
        .then(() => undefined)
        .catch((err: unknown) => this.logger.warn({ event: 'nats_account_push_failed', err: KeyhubError.from(err).message }, 'NATS account update failed; retrying'))
        .finally(() => this.schedule());
    }, this.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.nc?.drain().catch(() => this.nc?.close());
  }
}
