/**
 * Every key type pushed end to end: created through the operator CLI (hub
 * HSM), distributed over NATS to a listener, imported into its SoftHSM2
 * target, confirmed by a receipt whose KCV the target computed. Then checked
 * with tools that share no code with Keyhub:
 * - `pkcs11-tool --list-objects` reads back class, type, usages, sensitive
 *   and extractable of every object (both halves of a key pair);
 * - the KCVs again, from operations pkcs11-tool runs in the target token
 *   (AES-ECB twice for the CMAC, SHA256-HMAC) or from the public key
 *   pkcs11-tool reads back (SHA-256 of its SPKI);
 * - for each key pair, a signature pkcs11-tool makes in the target token
 *   (SHA256-RSA-PKCS, ECDSA) verifies with `openssl dgst -verify` against
 *   the public key read back from the token.
 * One RSA-4096 key only: its generation is the slow part.
 *
 * What pkcs11-tool 0.23 (Debian 12) cannot show, and so is left to the
 * receipts' KCVs (computed by the listener in the token): it never prints
 * CKA_SIGN of a secret key (its "Usage" line omits it; HMAC signing by
 * pkcs11-tool below proves it for HMAC and generic keys), it has no DES3-ECB
 * encryption ("Mechanism DES3-ECB illegal or not supported", also by
 * number) and no AES-CMAC signing, and it prints CKK_DES2 as "unknown key
 * algorithm 20".
 */
import { strict as assert } from 'node:assert';
import { createHash, createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { KEY_ALGORITHM_INFO, type KeyAlgorithm } from '@keyhub/protocol';
import { cmacSubkey } from '@keyhub/shared';
import type { StatusRow } from '@keyhub/hub/dist/operations/keys/key-status';
import { pkcs11Tool, run } from '../env';
import { Deployment } from '../harness/deployment';

const SITE = 'kt-site';

const CASES: Array<{ alg: KeyAlgorithm; usages: string[] }> = [
  { alg: 'AES-128', usages: ['encrypt', 'decrypt'] },
  { alg: 'AES-192', usages: ['sign', 'verify'] },
  { alg: 'AES-256', usages: ['encrypt', 'decrypt', 'derive'] },
  { alg: 'TDES-2KEY', usages: ['encrypt', 'decrypt'] },
  { alg: 'TDES-3KEY', usages: ['encrypt'] },
  { alg: 'HMAC-SHA256', usages: ['sign', 'verify'] },
  { alg: 'HMAC-SHA384', usages: ['sign', 'verify'] },
  { alg: 'HMAC-SHA512', usages: ['sign'] },
  { alg: 'GENERIC-256', usages: ['derive'] },
  { alg: 'GENERIC-384', usages: ['sign', 'verify', 'derive'] },
  { alg: 'GENERIC-512', usages: ['sign', 'derive'] },
  { alg: 'RSA-2048', usages: ['sign', 'verify'] },
  { alg: 'RSA-3072', usages: ['sign', 'verify', 'encrypt', 'decrypt'] },
  { alg: 'RSA-4096', usages: ['sign', 'verify'] },
  { alg: 'EC-P256', usages: ['sign', 'verify'] },
  { alg: 'EC-P384', usages: ['sign', 'verify', 'derive'] },
  { alg: 'EC-P521', usages: ['sign'] },
];

const keyName = (alg: string) => `kt-${alg.toLowerCase()}`;

/** One object of `pkcs11-tool --list-objects`, its lines parsed. */
interface ListedObject {
  head: string;
  label: string;
  id: string;
  usages: Set<string>;
  access: string;
  ecPoint?: string;
  ecParams?: string;
}

function parseObjects(stdout: string): ListedObject[] {
  return stdout
    .split(/\n(?=(?:Secret|Private|Public) Key Object)/)
    .filter((b) => /Key Object/.test(b))
    .map((block) => {
      const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(.*)$`, 'm').exec(block)?.[1].trim();
      const usage = field('Usage') ?? '';
      return {
        head: block.split('\n')[0],
        label: field('label') ?? '',
        id: field('ID') ?? '',
        usages: new Set(usage === 'none' ? [] : usage.split(',').map((u) => u.trim())),
        access: field('Access') ?? '',
        ecPoint: field('EC_POINT'),
        ecParams: field('EC_PARAMS'),
      };
    });
}

const CURVE_BY_PARAMS: Record<string, string> = { '06082a8648ce3d030107': 'P-256', '06052b81040022': 'P-384', '06052b81040023': 'P-521' };

describe('every key type pushed end to end into a SoftHSM2 target, checked with pkcs11-tool and OpenSSL', function () {
  this.timeout(300_000);
  let d: Deployment;
  const created = new Map<KeyAlgorithm, { id: string; kcv: string }>();
  let objects: ListedObject[] = [];

  before(async () => {
    d = await Deployment.create([SITE]);
    await d.initHub();
    await d.startHub();
    await d.enrollListener(SITE);
  });

  after(async () => {
    await d?.cleanup();
  });

  const token = () => d.site(SITE).token;
  const p11 = async (args: string[]) => {
    const r = await pkcs11Tool(d.hsm, ['--token-label', token().label, '--login', '--pin', token().pin, ...args]);
    assert.equal(r.code, 0, `pkcs11-tool ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const objectId = (alg: KeyAlgorithm) => `${created.get(alg)!.id.replace(/-/g, '')}00000001`;
  const file = (name: string) => path.join(d.dir.path, name);

  it('creates every type through the CLI, refuses usages a type cannot have, and distributes them all; each receipt carries the hub KCV', async () => {
    // A few at a time: the RSA-4096 generation runs beside the others.
    const queue = [...CASES];
    const worker = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const k = await d.keyhubJson<{ id: string; kcv: string; algorithm: string }>(['key', 'create', keyName(c.alg), '--alg', c.alg, '--usage', ...c.usages]);
        assert.equal(k.algorithm, c.alg);
        assert.match(k.kcv, /^[0-9a-f]{6}$/);
        created.set(c.alg, k);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const refused = await d.keyhub(['key', 'create', 'kt-bad', '--alg', 'EC-P256', '--usage', 'encrypt']);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /KEY_USAGE_INVALID/);

    const push = await d.keyhub(['distribute', ...CASES.map((c) => keyName(c.alg)), '--to', SITE, '--wait', '--timeout', '120']);
    assert.equal(push.code, 0, push.stdout + push.stderr);
    const all = await d.keyhubJson<StatusRow[]>(['status']);
    for (const c of CASES) {
      const rows = all.filter((r) => r.key === keyName(c.alg));
      assert.equal(rows.length, 1, c.alg);
      assert.equal(rows[0].state, 'confirmed', `${c.alg}: ${rows[0].errorCode}`);
      assert.equal(rows[0].targetKcv, created.get(c.alg)!.kcv, `${c.alg}: KCV computed at the target`);
    }
  });

  it('pkcs11-tool reads back every object: class and type, exactly the usages granted, sensitive, not extractable; a key pair has both halves', async () => {
    objects = parseObjects((await p11(['--list-objects'])).stdout);
    for (const c of CASES) {
      const info = KEY_ALGORITHM_INFO[c.alg];
      const mine = objects.filter((o) => o.id === objectId(c.alg));
      const usages = new Set(c.usages);
      const label = `${keyName(c.alg)}.v1`;
      if (info.keyClass === 'secret') {
        assert.equal(mine.length, 1, `${c.alg}: one object`);
        const o = mine[0];
        const type = { aes: /AES/, des2: /DES2|unknown key algorithm 20$/, des3: /DES3/, generic: /Generic secret/ }[info.keyType as 'aes' | 'des2' | 'des3' | 'generic'];
        assert.match(o.head, /^Secret Key Object/, c.alg);
        assert.match(o.head, type, `${c.alg}: ${o.head}`);
        // pkcs11-tool 0.23 leaves CKA_SIGN of secret keys out of its Usage line (see above).
        usages.delete('sign');
        assert.deepEqual([...o.usages].sort(), [...usages].sort(), `${c.alg} usages`);
        assert.ok(o.label.endsWith(label), o.label);
        assert.match(o.access, /\bsensitive\b/, c.alg);
        assert.doesNotMatch(o.access.replace(/never extractable/g, ''), /\bextractable\b/, `${c.alg}: CKA_EXTRACTABLE must be false`);
        continue;
      }
      const priv = mine.find((o) => o.head.startsWith('Private Key Object'));
      const pub = mine.find((o) => o.head.startsWith('Public Key Object'));
      assert.ok(priv && pub, `${c.alg}: private and public key objects under one CKA_ID`);
      assert.match(priv.head, info.keyType === 'rsa' ? /RSA/ : /EC/);
      assert.deepEqual([...priv.usages].sort(), c.usages.filter((u) => ['sign', 'decrypt', 'unwrap', 'derive'].includes(u)).sort(), `${c.alg} private usages`);
      assert.deepEqual([...pub.usages].sort(), c.usages.filter((u) => ['verify', 'encrypt', 'wrap'].includes(u)).sort(), `${c.alg} public usages`);
      assert.match(priv.access, /\bsensitive\b/);
      assert.doesNotMatch(priv.access.replace(/never extractable/g, ''), /\bextractable\b/, `${c.alg}: private key must not be extractable`);
      assert.ok(priv.label.endsWith(label) && pub.label.endsWith(label));
      if (info.keyType === 'rsa') assert.match(pub.head, new RegExp(`RSA ${info.rsaBits} bits`));
      else assert.equal(CURVE_BY_PARAMS[pub.ecParams ?? ''], info.curve);
    }
  });

  /** The public key of a pair as pkcs11-tool reads it from the token: --read-object for RSA; for EC from the listed EC_POINT and EC_PARAMS (pkcs11-tool 0.23 cannot export EC keys under OpenSSL 3). */
  async function publicKeyFromToken(alg: KeyAlgorithm): Promise<Buffer> {
    if (KEY_ALGORITHM_INFO[alg].keyType === 'rsa') {
      const out = file(`${alg}.spki`);
      await p11(['--read-object', '--type', 'pubkey', '--id', objectId(alg), '--output-file', out]);
      return createPublicKey({ key: await readFile(out), format: 'der', type: 'spki' }).export({ format: 'der', type: 'spki' });
    }
    const pub = objects.find((o) => o.id === objectId(alg) && o.head.startsWith('Public Key Object'))!;
    const der = Buffer.from(pub.ecPoint!, 'hex');
    // The listed EC_POINT is a DER OCTET STRING around the uncompressed point.
    const point = der.subarray(der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2);
    const size = (point.length - 1) / 2;
    const jwk = { kty: 'EC', crv: CURVE_BY_PARAMS[pub.ecParams!], x: point.subarray(1, 1 + size).toString('base64url'), y: point.subarray(1 + size).toString('base64url') };
    return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' });
  }

  it('the KCVs again, from pkcs11-tool: AES-CMAC from AES-ECB and HMAC-SHA256 in the target token, SHA-256 of each public key read back', async () => {
    const kcvOf = (b: Buffer) => b.subarray(0, 3).toString('hex');
    const inToken = async (alg: KeyAlgorithm, op: string[], input: Buffer): Promise<Buffer> => {
      const i = file(`${alg}-${op.join('')}-in`);
      await writeFile(i, input);
      await p11([...op, '--id', objectId(alg), '--input-file', i, '--output-file', `${i}.out`]);
      return readFile(`${i}.out`);
    };
    const checked: string[] = [];
    for (const c of CASES) {
      const info = KEY_ALGORITHM_INFO[c.alg];
      const expected = created.get(c.alg)!.kcv;
      let kcv: string | undefined;
      if (info.kcv === 'aes-cmac' && c.usages.includes('encrypt')) {
        const l = await inToken(c.alg, ['--encrypt', '-m', 'AES-ECB'], Buffer.alloc(16));
        kcv = kcvOf(await inToken(c.alg, ['--encrypt', '-m', 'AES-ECB'], cmacSubkey(l)));
      } else if (info.kcv === 'hmac-sha256' && c.usages.includes('sign')) {
        kcv = kcvOf(await inToken(c.alg, ['--sign', '-m', 'SHA256-HMAC'], Buffer.alloc(16)));
      } else if (info.kcv === 'spki-sha256') {
        kcv = kcvOf(
          createHash('sha256')
            .update(await publicKeyFromToken(c.alg))
            .digest(),
        );
      }
      if (kcv === undefined) continue;
      assert.equal(kcv, expected, `${c.alg}: KCV by pkcs11-tool`);
      checked.push(c.alg);
    }
    // Covered by the receipts only: sign-only AES-192 and derive-only GENERIC-256 (their usages let pkcs11-tool show nothing), TDES (no DES3-ECB in pkcs11-tool 0.23).
    assert.equal(checked.length, CASES.length - 4, checked.join(','));
  });

  it('each key pair signs in the target token (pkcs11-tool), and OpenSSL verifies the signature against the public key from the token', async () => {
    const data = file('message.txt');
    await writeFile(data, 'keyhub: a message signed in the target token\n');
    const digest = file('message.sha256');
    await writeFile(
      digest,
      createHash('sha256')
        .update(await readFile(data))
        .digest(),
    );
    for (const c of CASES.filter((x) => KEY_ALGORITHM_INFO[x.alg].keyClass === 'private')) {
      const rsa = KEY_ALGORITHM_INFO[c.alg].keyType === 'rsa';
      const sig = file(`${c.alg}.sig`);
      await p11([
        '--sign',
        '--id',
        objectId(c.alg),
        ...(rsa ? ['-m', 'SHA256-RSA-PKCS', '--input-file', data] : ['-m', 'ECDSA', '--signature-format', 'openssl', '--input-file', digest]),
        '--output-file',
        sig,
      ]);
      const pem = file(`${c.alg}.pem`);
      await writeFile(pem, createPublicKey({ key: await publicKeyFromToken(c.alg), format: 'der', type: 'spki' }).export({ format: 'pem', type: 'spki' }));
      const v = await run('openssl', ['dgst', '-sha256', '-verify', pem, '-signature', sig, data]);
      assert.equal(v.code, 0, `${c.alg}: ${v.stdout}${v.stderr}`);
      assert.match(v.stdout, /Verified OK/);
      // And a signature over other data does not verify: the check can fail.
      const other = file('other.txt');
      await writeFile(other, 'something else\n');
      const bad = await run('openssl', ['dgst', '-sha256', '-verify', pem, '-signature', sig, other]);
      assert.notEqual(bad.code, 0, `${c.alg}: a signature must not verify for other data`);
    }
  });
});
