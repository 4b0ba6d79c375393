import { randomBytes } from 'node:crypto';
import { KeyhubError, type Hsm, type KeyHandle } from '@keyhub/shared';
import { encodeNatsJwt, type JwtSigner, type UserPermissions } from './nats-jwt';
import { encodePublicNkey, type NkeyKind } from './nkey-encoding';

/**
 * Token labels of the NATS issuing keys. All three are Ed25519 pairs in the
 * hub token (CKM_EDDSA, which SoftHSM2 2.6 offers), made by `keyhub-server
 * init`; the private halves are sensitive, never extractable, sign only.
 * - operator: signs the account JWTs, the root the servers trust;
 * - system: the system account, whose one user (the hub) pushes updates;
 * - account: the Keyhub account, signs every user JWT (hub, listeners, bootstraps).
 */
export const NATS_KEY_LABELS = { operator: 'keyhub-nats-operator', system: 'keyhub-nats-system', account: 'keyhub-nats-account' } as const;
type Role = keyof typeof NATS_KEY_LABELS;

const KIND: Record<Role, NkeyKind> = { operator: 'operator', system: 'account', account: 'account' };

/** Limits left out of a JWT default to 0 on 2.9 (FIELD-NOTES): every one is set, -1 meaning no limit. */
const ACCOUNT_LIMITS = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
const JETSTREAM_LIMITS = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

class HsmSigner implements JwtSigner {
  constructor(
    private readonly hsm: Hsm,
    private readonly privateKey: KeyHandle,
    readonly publicKey: string,
  ) {}

  sign(data: Buffer): Promise<Buffer> {
    return this.hsm.signEddsa(this.privateKey, data);
  }
}

/** The hub as NATS operator and account: issues every JWT the servers and clients use. */
export class NatsAuthority {
  private static readonly loaded = new WeakMap<Hsm, Promise<NatsAuthority>>();

  private constructor(private readonly signers: Record<Role, HsmSigner>) {}

  /** One per HSM session pool: the key lookups are done once per process. */
  static for(hsm: Hsm): Promise<NatsAuthority> {
    let p = NatsAuthority.loaded.get(hsm);
    if (!p) {
      p = NatsAuthority.load(hsm);
      p.catch(() => NatsAuthority.loaded.delete(hsm));
      NatsAuthority.loaded.set(hsm, p);
    }
    return p;
  }

  /** Idempotent, for `keyhub-server init`: creates the keys that are missing. */
  static async ensure(hsm: Hsm): Promise<{ authority: NatsAuthority; created: string[] }> {
    const created: string[] = [];
    for (const label of Object.values(NATS_KEY_LABELS)) {
      if ((await hsm.findKeys({ class: 'private', label, token: true })).length > 0) continue;
      await hsm.generateEd25519KeyPair({ token: true, label, id: randomBytes(16) });
      created.push(label);
    }
    return { authority: await NatsAuthority.load(hsm), created };
  }

  static async load(hsm: Hsm): Promise<NatsAuthority> {
    const entries = await Promise.all(
      (Object.keys(NATS_KEY_LABELS) as Role[]).map(async (role): Promise<[Role, HsmSigner]> => {
        const label = NATS_KEY_LABELS[role];
        const [priv] = await hsm.findKeys({ class: 'private', label, token: true });
        const [pub] = await hsm.findKeys({ class: 'public', label, token: true });
        if (!priv || !pub) throw new KeyhubError('HSM_OBJECT_NOT_FOUND', `NATS key ${label} is not in the hub token: run keyhub-server init`);
        return [role, new HsmSigner(hsm, priv, encodePublicNkey(KIND[role], await hsm.ed25519PublicKey(pub)))];
      }),
    );
    return new NatsAuthority(Object.fromEntries(entries) as Record<Role, HsmSigner>);
  }

  get operatorKey(): string {
    return this.signers.operator.publicKey;
  }

  get systemAccountKey(): string {
    return this.signers.system.publicKey;
  }

  get accountKey(): string {
    return this.signers.account.publicKey;
  }

  operatorJwt(): Promise<string> {
    const op = this.signers.operator;
    return encodeNatsJwt({ name: 'keyhub', sub: op.publicKey, nats: { type: 'operator', system_account: this.systemAccountKey } }, op);
  }

  systemAccountJwt(): Promise<string> {
    return encodeNatsJwt({ name: 'SYS', sub: this.systemAccountKey, nats: { type: 'account', limits: ACCOUNT_LIMITS } }, this.signers.operator);
  }

  /** The Keyhub account with JetStream and its current revocation list. */
  accountJwt(revocations: Record<string, number> = {}): Promise<string> {
    const nats = { type: 'account' as const, limits: { ...ACCOUNT_LIMITS, ...JETSTREAM_LIMITS }, ...(Object.keys(revocations).length ? { revocations } : {}) };
    return encodeNatsJwt({ name: 'KEYHUB', sub: this.accountKey, nats }, this.signers.operator);
  }

  /** A user of the Keyhub account (or, for the hub's updates, of the system account). */
  async issueUser(u: { userKey: string; name: string; permissions: UserPermissions; expiresAt?: Date; system?: boolean }): Promise<string> {
    if (!/^U[A-Z2-7]{55}$/.test(u.userKey)) throw new KeyhubError('INPUT_INVALID', 'not a NATS user public key');
    const issuer = u.system ? this.signers.system : this.signers.account;
    return encodeNatsJwt(
      {
        name: u.name,
        sub: u.userKey,
        ...(u.expiresAt ? { exp: Math.floor(u.expiresAt.getTime() / 1000) } : {}),
        nats: { type: 'user', ...u.permissions, subs: -1, data: -1, payload: -1 },
      },
      issuer,
    );
  }
}
