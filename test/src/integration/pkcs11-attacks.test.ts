/**
 * The PKCS#11 attribute attacks of issue 10, run as someone who holds the
 * PIN but not Keyhub's policy: raw pkcs11js calls on tokens that Keyhub's
 * own code set up (the hub keyring; a listener's transport key, root KEK and
 * an imported key). Keyhub's connections are closed first; the attacker
 * opens the module afresh, logs in and tries. Each attack must be refused by
 * the token with its CKR code. Where SoftHSM2 2.6.1 does not enforce
 * something, the test asserts that too: README, "HSM: what the token
 * enforces", lists the same cases.
 */
import { strict as assert } from 'node:assert';
import * as pkcs11js from 'pkcs11js';
import { aesKcv, Pkcs11Hsm, type KeyHandle } from '@keyhub/shared';
import { HMK_KEK_LABEL, HMK_LABEL, HMK_PRIVATE_LABEL, HMK_SECRET_LABEL, HubKeyring, ROW_MAC_LABEL } from '@keyhub/hub/dist/crypto/hub-keyring';
import { ListenerKeys, TRANSPORT_LABEL, kekLabel } from '@keyhub/listener/dist/listener-keys';
import { createSoftHsm, type SoftHsmEnv } from '../env';

const P = pkcs11js;
const KWP = { mechanism: 0x210a };
const OAEP_PARAMS: pkcs11js.RsaOAEP = { type: P.CK_PARAMS_RSA_OAEP, hashAlg: P.CKM_SHA_1, mgf: P.CKG_MGF1_SHA1, source: 1 };
const OAEP_SHA1: pkcs11js.Mechanism = { mechanism: P.CKM_RSA_PKCS_OAEP, parameter: OAEP_PARAMS };
const ECB = { mechanism: P.CKM_AES_ECB };

/** The CKR name of what a raw call threw ('OK' when it did not), as pkcs11js reports it in both of its ways. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (err) {
    if (err instanceof P.Pkcs11Error)
      return err.code === 0x1b ? 'CKR_ACTION_PROHIBITED' : (Object.keys(P).find((k) => k.startsWith('CKR_') && (P as unknown as Record<string, number>)[k] === err.code) ?? String(err.code));
    const m = /(CKR_[A-Z_]+):(\d+)/.exec(String((err as Error).message));
    if (m) return Number(m[2]) === 0x1b ? 'CKR_ACTION_PROHIBITED' : m[1];
    throw err;
  }
}

function secret(token: boolean, flags: Record<string, boolean>): pkcs11js.Template {
  return [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_TOKEN, value: token },
    ...Object.entries(flags).map(([k, v]) => ({ type: (P as unknown as Record<string, number>)[`CKA_${k}`], value: v })),
  ];
}

/** RFC 3394 unwrap done with AES-ECB decryptions under the KEK: what wrap-then-decrypt needs a KEK to allow. */
function kwUnwrapByEcb(lib: pkcs11js.PKCS11, s: Buffer, kek: Buffer, wrapped: Buffer): Buffer {
  const n = wrapped.length / 8 - 1;
  let a = Buffer.from(wrapped.subarray(0, 8));
  const r = Array.from({ length: n }, (_, i) => Buffer.from(wrapped.subarray(8 + 8 * i, 16 + 8 * i)));
  for (let j = 5; j >= 0; j--) {
    for (let i = n; i >= 1; i--) {
      const t = Buffer.alloc(8);
      t.writeBigUInt64BE(BigInt(n * j + i));
      for (let b = 0; b < 8; b++) a[b] ^= t[b];
      lib.C_DecryptInit(s, ECB, kek);
      const block = Buffer.from(lib.C_Decrypt(s, Buffer.concat([a, r[i - 1]]), Buffer.alloc(16)));
      a = block.subarray(0, 8);
      r[i - 1] = block.subarray(8);
    }
  }
  return Buffer.concat(r);
}

describe('PKCS#11 attribute attacks by a PIN holder, against SoftHSM2 tokens set up by Keyhub', function () {
  this.timeout(120_000);
  let env: SoftHsmEnv;
  let lib: pkcs11js.PKCS11;
  let hub: Buffer;
  let site: Buffer;
  /** Stored blobs as the hub keeps them: a key version under keyhub-hmk, a root KEK under keyhub-hmk-kek. */
  let keyBlob: Buffer;
  let kekBlob: Buffer;
  /** The root KEK message's blob (RSA-OAEP to the transport key), and a package blob under the root KEK. */
  let rootKekMessageBlob: Buffer;
  let packageBlob: Buffer;
  const one = (s: Buffer, template: pkcs11js.Template): Buffer => {
    lib.C_FindObjectsInit(s, template);
    const [h] = lib.C_FindObjects(s, 2);
    lib.C_FindObjectsFinal(s);
    assert.ok(h, 'object not found');
    return h;
  };
  const byLabel = (s: Buffer, cls: number, label: string) =>
    one(s, [
      { type: P.CKA_CLASS, value: cls },
      { type: P.CKA_LABEL, value: label },
    ]);

  before(async () => {
    env = await createSoftHsm(['attack-hub', 'attack-site', 'attack-site2']);
    process.env.SOFTHSM2_CONF = env.confPath;
    const [hubToken, siteToken, site2Token] = env.tokens;
    process.env.KEYHUB_ATTACK_HUB_PIN = hubToken.pin;
    process.env.KEYHUB_ATTACK_SITE_PIN = siteToken.pin;
    process.env.KEYHUB_ATTACK_SITE2_PIN = site2Token.pin;
    // Set up by Keyhub's code: the hub keyring, two sites' transport keys, one site's root KEK installed, one key delivered.
    const hubHsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'attack-hub', pinEnv: 'KEYHUB_ATTACK_HUB_PIN' });
    const siteHsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'attack-site', pinEnv: 'KEYHUB_ATTACK_SITE_PIN' });
    const site2Hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'attack-site2', pinEnv: 'KEYHUB_ATTACK_SITE2_PIN' });
    try {
      const { keyring } = await HubKeyring.ensure(hubHsm);
      const siteKeys = new ListenerKeys(siteHsm);
      await siteKeys.ensureEnrollmentKeys(2048);
      const site2Keys = new ListenerKeys(site2Hsm);
      await site2Keys.ensureEnrollmentKeys(2048);
      const rootKek = await hubHsm.generateAesKey(32, { token: false, extractable: true, sign: true, wrap: true });
      const key = await hubHsm.generateAesKey(32, { token: false, extractable: true, sign: true });
      keyBlob = await keyring.wrapKeyVersion(key);
      kekBlob = await keyring.wrapRootKek(rootKek);
      packageBlob = await hubHsm.wrapKwp(rootKek, key);
      const toSite = async (keys: ListenerKeys): Promise<Buffer> => hubHsm.wrapRsaOaep(await hubHsm.importRsaWrappingKey(await keys.transportSpki()), rootKek, 'sha1');
      const installed = await toSite(siteKeys);
      rootKekMessageBlob = await toSite(site2Keys);
      const kcv = await aesKcv(hubHsm, rootKek);
      assert.equal(await siteKeys.unwrapRootKek(installed, 'sha1', 'kek-1', 1, (h: KeyHandle) => aesKcv(siteHsm, h), kcv), 'stored');
    } finally {
      await site2Hsm.close();
      await siteHsm.close();
      await hubHsm.close();
    }
    // The attacker: the module afresh, their own sessions, the PINs.
    lib = new P.PKCS11();
    lib.load(env.modulePath);
    lib.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
    const open = (label: string, pin: string): Buffer => {
      const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trim() === label)!;
      const s = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      lib.C_Login(s, P.CKU_USER, pin);
      return s;
    };
    hub = open('attack-hub', hubToken.pin);
    site = open('attack-site', siteToken.pin);
  });

  after(async () => {
    try {
      lib?.C_Finalize();
      lib?.close();
    } catch {
      // Already gone with the module.
    }
    await env?.cleanup();
  });

  describe('hub token', () => {
    it('re-unwrapping a stored key version under the master key with a permissive template is refused (CKR_TEMPLATE_INCONSISTENT)', () => {
      const hmk = byLabel(hub, P.CKO_SECRET_KEY, HMK_LABEL);
      const allowed = { PRIVATE: false, SENSITIVE: true, EXTRACTABLE: true, ENCRYPT: false, DECRYPT: false, SIGN: false, VERIFY: false, WRAP: false, UNWRAP: false, DERIVE: false };
      const kwpOnly = {
        type: P.CKA_ALLOWED_MECHANISMS,
        value: (() => {
          const b = Buffer.alloc(8);
          b.writeBigUInt64LE(0x210an);
          return b;
        })(),
      };
      assert.equal(
        outcome(() => lib.C_UnwrapKey(hub, KWP, hmk, keyBlob, secret(false, { ...allowed, SENSITIVE: false }))),
        'CKR_TEMPLATE_INCONSISTENT',
        'non-sensitive',
      );
      assert.equal(
        outcome(() => lib.C_UnwrapKey(hub, KWP, hmk, keyBlob, [...secret(false, { ...allowed, ENCRYPT: true, DECRYPT: true }), kwpOnly])),
        'CKR_TEMPLATE_INCONSISTENT',
        'encrypt+decrypt',
      );
      assert.equal(
        outcome(() => lib.C_UnwrapKey(hub, KWP, hmk, keyBlob, [...secret(true, allowed), kwpOnly])),
        'CKR_TEMPLATE_INCONSISTENT',
        'as a token object',
      );
      assert.equal(
        outcome(() => lib.C_UnwrapKey(hub, KWP, hmk, keyBlob, secret(false, allowed))),
        'CKR_TEMPLATE_INCONSISTENT',
        'any mechanism',
      );
      assert.equal(
        outcome(() =>
          lib.C_UnwrapKey(hub, KWP, hmk, keyBlob, [
            { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
            { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
          ]),
        ),
        'CKR_TEMPLATE_INCONSISTENT',
        'token defaults',
      );
      // The root-KEK store never lets a KEK out extractable, whatever else the template says.
      const hmkKek = byLabel(hub, P.CKO_SECRET_KEY, HMK_KEK_LABEL);
      const kekAllowed = { ...allowed, EXTRACTABLE: false, WRAP: true };
      assert.equal(
        outcome(() => lib.C_UnwrapKey(hub, KWP, hmkKek, kekBlob, [...secret(false, { ...kekAllowed, EXTRACTABLE: true }), kwpOnly])),
        'CKR_TEMPLATE_INCONSISTENT',
        'KEK as extractable',
      );
      assert.equal(
        outcome(() => lib.C_UnwrapKey(hub, KWP, hmkKek, kekBlob, [...secret(false, { ...kekAllowed, DECRYPT: true }), kwpOnly])),
        'CKR_TEMPLATE_INCONSISTENT',
        'KEK with decrypt',
      );
    });

    it('C_SetAttributeValue on the master keys and the row-MAC key is refused (CKR_ACTION_PROHIBITED: not modifiable)', () => {
      for (const label of [HMK_LABEL, HMK_KEK_LABEL, HMK_SECRET_LABEL, HMK_PRIVATE_LABEL, ROW_MAC_LABEL]) {
        const h = byLabel(hub, P.CKO_SECRET_KEY, label);
        for (const attr of [P.CKA_DECRYPT, P.CKA_ENCRYPT, P.CKA_EXTRACTABLE]) {
          assert.equal(
            outcome(() => lib.C_SetAttributeValue(hub, h, [{ type: attr, value: true }])),
            'CKR_ACTION_PROHIBITED',
            `${label} attribute ${attr}`,
          );
        }
        assert.equal(
          outcome(() => lib.C_SetAttributeValue(hub, h, [{ type: P.CKA_SENSITIVE, value: false }])),
          'CKR_ACTION_PROHIBITED',
          `${label} sensitive`,
        );
      }
    });

    it('C_CopyObject of the master keys, plain or with escalated attributes, is refused (CKR_ACTION_PROHIBITED: not copyable)', () => {
      for (const label of [HMK_LABEL, HMK_KEK_LABEL, HMK_SECRET_LABEL, HMK_PRIVATE_LABEL, ROW_MAC_LABEL]) {
        const h = byLabel(hub, P.CKO_SECRET_KEY, label);
        assert.equal(
          outcome(() => lib.C_CopyObject(hub, h, [{ type: P.CKA_TOKEN, value: false }])),
          'CKR_ACTION_PROHIBITED',
          `${label} to a session copy`,
        );
        assert.equal(
          outcome(() =>
            lib.C_CopyObject(hub, h, [
              { type: P.CKA_ENCRYPT, value: true },
              { type: P.CKA_DECRYPT, value: true },
            ]),
          ),
          'CKR_ACTION_PROHIBITED',
          `${label} with encrypt+decrypt`,
        );
      }
    });

    it('wrap-then-decrypt fails with the master keys (CKR_KEY_FUNCTION_NOT_PERMITTED) and with a KEK unwrapped from the KEK store even after CKA_DECRYPT is switched on (CKR_MECHANISM_INVALID)', () => {
      for (const label of [HMK_LABEL, HMK_KEK_LABEL, HMK_SECRET_LABEL, HMK_PRIVATE_LABEL]) {
        const h = byLabel(hub, P.CKO_SECRET_KEY, label);
        assert.equal(
          outcome(() => lib.C_DecryptInit(hub, ECB, h)),
          'CKR_KEY_FUNCTION_NOT_PERMITTED',
          label,
        );
        assert.equal(
          outcome(() => lib.C_EncryptInit(hub, ECB, h)),
          'CKR_KEY_FUNCTION_NOT_PERMITTED',
          label,
        );
      }
      const hmkKek = byLabel(hub, P.CKO_SECRET_KEY, HMK_KEK_LABEL);
      const kwpOnly = {
        type: P.CKA_ALLOWED_MECHANISMS,
        value: (() => {
          const b = Buffer.alloc(8);
          b.writeBigUInt64LE(0x210an);
          return b;
        })(),
      };
      const kek = lib.C_UnwrapKey(hub, KWP, hmkKek, kekBlob, [
        ...secret(false, { PRIVATE: false, SENSITIVE: true, EXTRACTABLE: false, ENCRYPT: false, DECRYPT: false, SIGN: false, VERIFY: false, WRAP: true, UNWRAP: false, DERIVE: false }),
        kwpOnly,
      ]);
      const victim = lib.C_GenerateKey(hub, { mechanism: P.CKM_AES_KEY_GEN }, [...secret(false, { SENSITIVE: true, EXTRACTABLE: true }), { type: P.CKA_VALUE_LEN, value: 32 }]);
      const wrapped = Buffer.from(lib.C_WrapKey(hub, KWP, kek, victim, Buffer.alloc(64)));
      assert.equal(
        outcome(() => kwUnwrapByEcb(lib, hub, kek, wrapped)),
        'CKR_KEY_FUNCTION_NOT_PERMITTED',
        'CKA_DECRYPT is false',
      );
      // SoftHSM2 limit: an object made by an unwrap is always modifiable, so CKA_DECRYPT can be switched on ...
      assert.equal(
        outcome(() => lib.C_SetAttributeValue(hub, kek, [{ type: P.CKA_DECRYPT, value: true }])),
        'OK',
      );
      // ... but its allowed mechanisms (fixed by the KEK store's unwrap template) cannot change, and hold.
      assert.equal(
        outcome(() => kwUnwrapByEcb(lib, hub, kek, wrapped)),
        'CKR_MECHANISM_INVALID',
      );
      assert.equal(
        outcome(() => lib.C_DecryptInit(hub, { mechanism: P.CKM_AES_CBC, parameter: Buffer.alloc(16) }, kek)),
        'CKR_MECHANISM_INVALID',
      );
      assert.equal(
        outcome(() => lib.C_SetAttributeValue(hub, kek, [{ type: P.CKA_ALLOWED_MECHANISMS, value: Buffer.alloc(8, 0) }])),
        'CKR_ATTRIBUTE_READ_ONLY',
      );
      assert.equal(
        outcome(() => lib.C_CopyObject(hub, kek, [{ type: P.CKA_ALLOWED_MECHANISMS, value: Buffer.alloc(8, 0) }])),
        'CKR_ATTRIBUTE_READ_ONLY',
      );
    });

    it('documented limit: a key version unwrapped as the hub needs it (extractable, to be re-wrapped) can be wrapped under a key of the PIN holder', () => {
      const hmk = byLabel(hub, P.CKO_SECRET_KEY, HMK_LABEL);
      const kwpOnly = {
        type: P.CKA_ALLOWED_MECHANISMS,
        value: (() => {
          const b = Buffer.alloc(8);
          b.writeBigUInt64LE(0x210an);
          return b;
        })(),
      };
      const key = lib.C_UnwrapKey(hub, KWP, hmk, keyBlob, [
        ...secret(false, { PRIVATE: false, SENSITIVE: true, EXTRACTABLE: true, ENCRYPT: false, DECRYPT: false, SIGN: false, VERIFY: false, WRAP: false, UNWRAP: false, DERIVE: false }),
        kwpOnly,
      ]);
      const mine = lib.C_GenerateKey(hub, { mechanism: P.CKM_AES_KEY_GEN }, [...secret(false, { SENSITIVE: false, EXTRACTABLE: true, WRAP: true }), { type: P.CKA_VALUE_LEN, value: 32 }]);
      // CKA_WRAP_WITH_TRUSTED would close this, but only the SO can mark a wrapping key CKA_TRUSTED (below).
      assert.equal(
        outcome(() => lib.C_WrapKey(hub, KWP, mine, key, Buffer.alloc(64))),
        'OK',
      );
    });

    it('CKA_TRUSTED cannot be set by the user (CKR_ATTRIBUTE_READ_ONLY); CKA_WRAP_WITH_TRUSTED and CKA_DESTROYABLE are enforced', () => {
      const gen = (extra: pkcs11js.Template) =>
        lib.C_GenerateKey(hub, { mechanism: P.CKM_AES_KEY_GEN }, [...secret(false, { WRAP: true, SENSITIVE: true, EXTRACTABLE: true }), { type: P.CKA_VALUE_LEN, value: 32 }, ...extra]);
      assert.equal(
        outcome(() => gen([{ type: P.CKA_TRUSTED, value: true }])),
        'CKR_ATTRIBUTE_READ_ONLY',
      );
      const guarded = gen([{ type: P.CKA_WRAP_WITH_TRUSTED, value: true }]);
      assert.equal(
        outcome(() => lib.C_WrapKey(hub, KWP, gen([]), guarded, Buffer.alloc(64))),
        'CKR_KEY_NOT_WRAPPABLE',
      );
      assert.equal(
        outcome(() => lib.C_SetAttributeValue(hub, guarded, [{ type: P.CKA_WRAP_WITH_TRUSTED, value: false }])),
        'CKR_ATTRIBUTE_READ_ONLY',
      );
      assert.equal(
        outcome(() => lib.C_DestroyObject(hub, gen([{ type: P.CKA_DESTROYABLE, value: false }]))),
        'CKR_ACTION_PROHIBITED',
      );
    });
  });

  describe('site token', () => {
    it('the transport key is gone once the root KEK is installed; a site still waiting cannot unwrap its root KEK message as extractable (CKR_TEMPLATE_INCONSISTENT) nor switch on decrypt (CKR_ACTION_PROHIBITED)', () => {
      lib.C_FindObjectsInit(site, [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_LABEL, value: TRANSPORT_LABEL },
      ]);
      assert.equal(lib.C_FindObjects(site, 2).length, 0, 'transport private key destroyed after install');
      lib.C_FindObjectsFinal(site);
      const site2 = (() => {
        const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trim() === 'attack-site2')!;
        const s = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
        lib.C_Login(s, P.CKU_USER, env.tokens[2].pin);
        return s;
      })();
      const transport = byLabel(site2, P.CKO_PRIVATE_KEY, TRANSPORT_LABEL);
      assert.equal(
        outcome(() => lib.C_UnwrapKey(site2, OAEP_SHA1, transport, rootKekMessageBlob, secret(false, { SENSITIVE: true, EXTRACTABLE: true }))),
        'CKR_TEMPLATE_INCONSISTENT',
      );
      assert.equal(
        outcome(() => lib.C_UnwrapKey(site2, OAEP_SHA1, transport, rootKekMessageBlob, secret(false, { SENSITIVE: false, EXTRACTABLE: false }))),
        'CKR_TEMPLATE_INCONSISTENT',
      );
      assert.equal(
        outcome(() => lib.C_SetAttributeValue(site2, transport, [{ type: P.CKA_DECRYPT, value: true }])),
        'CKR_ACTION_PROHIBITED',
      );
      assert.equal(
        outcome(() => lib.C_DecryptInit(site2, OAEP_SHA1, transport)),
        'CKR_KEY_FUNCTION_NOT_PERMITTED',
      );
      assert.equal(
        outcome(() => lib.C_CopyObject(site2, transport, [{ type: P.CKA_DECRYPT, value: true }])),
        'CKR_ACTION_PROHIBITED',
      );
    });

    it('a delivered package cannot be unwrapped under the root KEK as extractable or non-sensitive (CKR_TEMPLATE_INCONSISTENT), nor the template changed (CKR_ATTRIBUTE_READ_ONLY)', () => {
      const kek = byLabel(site, P.CKO_SECRET_KEY, kekLabel('kek-1', 1));
      assert.equal(
        outcome(() => lib.C_UnwrapKey(site, KWP, kek, packageBlob, secret(false, { SENSITIVE: true, EXTRACTABLE: true, ENCRYPT: true }))),
        'CKR_TEMPLATE_INCONSISTENT',
      );
      assert.equal(
        outcome(() => lib.C_UnwrapKey(site, KWP, kek, packageBlob, secret(false, { SENSITIVE: false, EXTRACTABLE: false }))),
        'CKR_TEMPLATE_INCONSISTENT',
      );
      assert.equal(
        outcome(() => lib.C_UnwrapKey(site, KWP, kek, packageBlob, secret(false, { SENSITIVE: true, EXTRACTABLE: false, ENCRYPT: true }))),
        'OK',
        'as the target imports it',
      );
      assert.equal(
        outcome(() => lib.C_SetAttributeValue(site, kek, [{ type: P.CKA_EXTRACTABLE, value: true }])),
        'CKR_ATTRIBUTE_READ_ONLY',
      );
      assert.equal(
        outcome(() => lib.C_CopyObject(site, kek, [{ type: P.CKA_EXTRACTABLE, value: true }])),
        'CKR_ATTRIBUTE_READ_ONLY',
      );
    });

    it('wrap-then-decrypt with the root KEK fails: CKR_KEY_FUNCTION_NOT_PERMITTED, and CKR_MECHANISM_INVALID once CKA_DECRYPT is switched on (SoftHSM2 allows that on an unwrapped object)', () => {
      const kek = byLabel(site, P.CKO_SECRET_KEY, kekLabel('kek-1', 1));
      // The package as the stream keeps it: AES-KWP under the root KEK, which AES-ECB decryptions under the KEK would open.
      assert.equal(
        outcome(() => lib.C_DecryptInit(site, ECB, kek)),
        'CKR_KEY_FUNCTION_NOT_PERMITTED',
      );
      assert.equal(
        outcome(() => lib.C_SetAttributeValue(site, kek, [{ type: P.CKA_DECRYPT, value: true }])),
        'OK',
      );
      assert.equal(
        outcome(() => kwUnwrapByEcb(lib, site, kek, packageBlob)),
        'CKR_MECHANISM_INVALID',
      );
      assert.equal(
        outcome(() => lib.C_SetAttributeValue(site, kek, [{ type: P.CKA_ALLOWED_MECHANISMS, value: Buffer.alloc(8, 0) }])),
        'CKR_ATTRIBUTE_READ_ONLY',
      );
      lib.C_SetAttributeValue(site, kek, [{ type: P.CKA_DECRYPT, value: false }]);
    });

    it('baseline: the same wrap-then-decrypt recovers a key in clear with a KEK that may decrypt with AES-ECB (what the controls above stop)', () => {
      const kek = lib.C_GenerateKey(site, { mechanism: P.CKM_AES_KEY_GEN }, [...secret(false, { WRAP: true, DECRYPT: true }), { type: P.CKA_VALUE_LEN, value: 32 }]);
      const victim = lib.C_GenerateKey(site, { mechanism: P.CKM_AES_KEY_GEN }, [...secret(false, { SENSITIVE: false, EXTRACTABLE: true }), { type: P.CKA_VALUE_LEN, value: 32 }]);
      const clear = lib.C_GetAttributeValue(site, victim, [{ type: P.CKA_VALUE }])[0].value as Buffer;
      const wrapped = Buffer.from(lib.C_WrapKey(site, { mechanism: P.CKM_AES_KEY_WRAP }, kek, victim, Buffer.alloc(64)));
      assert.deepEqual(kwUnwrapByEcb(lib, site, kek, wrapped), clear);
    });
  });
});
