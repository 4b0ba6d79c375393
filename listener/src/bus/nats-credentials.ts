import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jwtAuthenticator, nkeys, type Authenticator } from 'nats';
import { NATS_CREDENTIALS_TYPE, verifyEnvelope, type NatsCredentialsMessage, type SignedEnvelope } from '@keyhub/protocol';
import { assertOwnerOnly, KeyhubError } from '@keyhub/shared';
import type { HubKeyStore } from '../state/hub-key';

const USER_SEED = 'nats-user.nk';
const USER_JWT = 'nats-user.jwt';
const BOOTSTRAP = 'bootstrap.creds';

const encoder = new TextEncoder();

interface Credential {
  jwt: string;
  seed: string;
}

/** The JWT and seed of a `.creds` file (nsc's format, which `keyhub listener register` writes). */
export function parseCreds(text: string): Credential {
  const block = (name: string): string | undefined => new RegExp(`-{3,}BEGIN ${name}-{3,}\\s*\\n\\s*([^\\s-][^\\s]*)\\s*\\n\\s*-{3,}END ${name}-{3,}`).exec(text)?.[1];
  const jwt = block('NATS USER JWT');
  const seed = block('USER NKEY SEED');
  if (!jwt || !seed || !seed.startsWith('SU')) throw new KeyhubError('CONFIG_INVALID', 'not a NATS credentials file (a user JWT and a user NKEY seed)');
  return { jwt, seed };
}

/**
 * The site's NATS identities, in the listener home, every file 0600:
 * - `nats-user.nk`: the site's own user seed, made at `enroll`; its public
 *   key travels in the signed enrollment. It never leaves the home.
 * - `nats-user.jwt`: that user's JWT, which the hub issues at approval and
 *   sends (signed) as the answer to the enrollment.
 * - `bootstrap.creds`: the credential `keyhub listener register` made for
 *   the site, good only for sending the enrollment and reading the answer.
 * Each connection (and reconnection) uses the site's own JWT once there is
 * one, the bootstrap before that, nothing on a server without auth.
 */
export class ListenerNatsCredentials {
  constructor(
    private readonly home: string,
    private readonly listenerId: string,
  ) {}

  private path(name: string): string {
    return join(this.home, name);
  }

  private readSecretFile(name: string): string | undefined {
    const p = this.path(name);
    if (!existsSync(p)) return undefined;
    assertOwnerOnly(statSync(p).mode, 'NATS credential', p);
    return readFileSync(p, 'utf8').trim();
  }

  private writeSecretFile(name: string, content: string): void {
    const p = this.path(name);
    writeFileSync(`${p}.tmp`, content, { mode: 0o600 });
    renameSync(`${p}.tmp`, p);
  }

  /** Copies an operator-supplied bootstrap `.creds` into the home (checked, 0600). */
  importBootstrap(file: string): void {
    const text = readFileSync(file, 'utf8');
    parseCreds(text);
    this.writeSecretFile(BOOTSTRAP, text);
  }

  /** The site's own user public key; the seed is made once and kept. */
  ensureUserKey(): string {
    const existing = this.readSecretFile(USER_SEED);
    if (existing) return nkeys.fromSeed(encoder.encode(existing)).getPublicKey();
    const user = nkeys.createUser();
    this.writeSecretFile(USER_SEED, new TextDecoder().decode(user.getSeed()) + '\n');
    return user.getPublicKey();
  }

  /** The site's user public key, if `enroll` has made it (nothing is created here). */
  userKey(): string | undefined {
    const existing = this.readSecretFile(USER_SEED);
    return existing ? nkeys.fromSeed(encoder.encode(existing)).getPublicKey() : undefined;
  }

  get hasUserJwt(): boolean {
    return existsSync(this.path(USER_JWT));
  }

  get hasAny(): boolean {
    return this.hasUserJwt || existsSync(this.path(BOOTSTRAP));
  }

  /** Which identity the next connection uses. */
  get identity(): 'listener' | 'bootstrap' | 'none' {
    return this.hasUserJwt ? 'listener' : existsSync(this.path(BOOTSTRAP)) ? 'bootstrap' : 'none';
  }

  private current(): Credential | undefined {
    const jwt = this.readSecretFile(USER_JWT);
    const seed = this.readSecretFile(USER_SEED);
    if (jwt && seed) return { jwt, seed };
    const boot = this.readSecretFile(BOOTSTRAP);
    return boot ? parseCreds(boot) : undefined;
  }

  /** Asked at every connect, so a JWT saved while connected is used from the next reconnection on. */
  authenticator(): Authenticator {
    return (nonce?: string) => {
      const c = this.current();
      // No credential at all: connect without one (a server without auth); NoAuth is `void`.
      return c ? jwtAuthenticator(c.jwt, encoder.encode(c.seed))(nonce) : undefined;
    };
  }

  /**
   * Takes the hub's answer to the enrollment: signed by the pinned hub key,
   * for this listener, naming this site's own user key. Anything else is
   * refused with its code and changes nothing.
   */
  accept(envelope: SignedEnvelope, hubKeys: HubKeyStore): 'saved' | 'unchanged' {
    const msg = envelope.payload as NatsCredentialsMessage;
    if (msg.type !== NATS_CREDENTIALS_TYPE) throw new KeyhubError('MESSAGE_UNKNOWN_TYPE', `${msg.type} is not NATS credentials`);
    if (msg.listenerId !== this.listenerId) throw new KeyhubError('PACKAGE_WRONG_LISTENER', 'NATS credentials for another listener');
    const hubKey = Buffer.from(msg.hubKey, 'base64');
    hubKeys.assertPinned(hubKey);
    if (!verifyEnvelope(envelope, hubKey)) throw new KeyhubError('SIGNATURE_INVALID', 'NATS credentials are not signed by the hub key');
    const seed = this.readSecretFile(USER_SEED);
    if (!seed || nkeys.fromSeed(encoder.encode(seed)).getPublicKey() !== msg.userKey) throw new KeyhubError('SIGNER_UNKNOWN', "NATS credentials name another user key than this site's");
    const claims = JSON.parse(Buffer.from(msg.userJwt.split('.')[1], 'base64url').toString('utf8')) as { sub?: unknown };
    if (claims.sub !== msg.userKey) throw new KeyhubError('MESSAGE_MALFORMED', 'the user JWT is for another key');
    if (this.readSecretFile(USER_JWT) === msg.userJwt) return 'unchanged';
    this.writeSecretFile(USER_JWT, msg.userJwt + '\n');
    return 'saved';
  }
}
