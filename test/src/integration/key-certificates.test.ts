/**
 * Certificate chains of key pair versions (issue 12, Java keystores), on
 * real parts: an in-process hub with its API, SoftHSM2 token and
 * PostgreSQL. What the hub makes is checked with OpenSSL's CLI, which shares
 * no code with it:
 * - a certificate from the hub's key-issuing CA for an RSA and an EC version
 *   passes `openssl verify` against the hub root, and certifies exactly the
 *   version's public key (`openssl x509 -pubkey`);
 * - a CSR signed in the hub HSM by the version's private key passes
 *   `openssl req -verify` and carries the version's public key; an outside
 *   CA (plain `openssl x509 -req`) signs it and the chain is imported;
 * - a chain for another key, or one not signed link by link, is refused
 *   with its code and changes nothing; secret keys and compromised versions
 *   are refused;
 * - the signed package of a key pair with a chain carries that chain, and
 *   one without (or a secret key) carries none.
 * And the `keyhub` CLI does the same through the API.
 */
import { strict as assert } from 'node:assert';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { api, decodeEnvelope, keyPackageSchema, verifyEnvelope, type KeyPackage, type SignedEnvelope } from '@keyhub/protocol';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { insertActiveListeners, listenerIds } from '../bench/hub-fixture';
import { Cleanup } from '../bench/lib';
import { makeTempDir, run, type TempDir } from '../env';
import { HUB_CLI } from '../harness/deployment';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;

function splitPem(chain: string): string[] {
  return [...chain.matchAll(PEM_CERT)].map((m) => (m[0].endsWith('\n') ? m[0] : `${m[0]}\n`));
}

function spkiOfPem(pem: string): Buffer {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' });
}

function errorCode(r: ApiResponse): string | undefined {
  return (r.body as { error?: { code?: string } } | undefined)?.error?.code;
}

describe('key pair certificates: hub CA, CSR signed in the hub HSM, imported chains, chains in packages', function () {
  this.timeout(240_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  let officer: string;
  let auditor: string;
  let dir: TempDir;
  const site = listenerIds(1, 'kcert')[0];

  const keyPath = (name: string, version = 1): string => `/v1/keys/${encodeURIComponent(name)}/versions/${version}`;
  const file = (name: string): string => path.join(dir.path, name);
  const openssl = async (args: string[]): Promise<string> => {
    const r = await run('openssl', args);
    assert.equal(r.code, 0, `openssl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return r.stdout + r.stderr;
  };
  /** The version's public key as the hub stored it at generation (DER SPKI). */
  const versionSpki = async (name: string, version = 1): Promise<Buffer> => {
    const rows: Array<{ public_key: Buffer }> = await h.fx.rt.ds.query('SELECT v.public_key FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = $1 AND v.version = $2', [name, version]);
    assert.equal(rows.length, 1);
    return rows[0].public_key;
  };
  const createKey = async (name: string, algorithm: string, usages: string[]): Promise<void> => {
    const r = await h.call('POST', '/v1/keys', { token: officer, body: { name, algorithm, usages } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const issue = (name: string, body: unknown = {}): Promise<ApiResponse> => h.call('POST', `${keyPath(name)}/certificate`, { token: officer, body });

  before(async function () {
    h = await createApiHub(cleanup);
    officer = await h.operator('kc-officer', ['key-officer']);
    auditor = await h.operator('kc-auditor', ['auditor']);
    await insertActiveListeners(h.fx, [site]);
    dir = await makeTempDir('key-certs');
    cleanup.add('temp dir', () => dir.remove());
    await createKey('kc/rsa', 'RSA-2048', ['sign', 'verify']);
    await createKey('kc/ec', 'EC-P256', ['sign', 'verify']);
    await createKey('kc/csr-rsa', 'RSA-3072', ['sign', 'verify']);
    await createKey('kc/csr-ec', 'EC-P384', ['sign']);
    await createKey('kc/bare', 'EC-P256', ['sign']);
    await createKey('kc/aes', 'AES-256', ['encrypt', 'decrypt']);
    await createKey('kc/gone', 'EC-P256', ['sign']);
    // An outside CA, made by OpenSSL alone.
    await openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      file('outside-ca.key'),
      '-out',
      file('outside-ca.pem'),
      '-subj',
      '/CN=Outside CA/O=Elsewhere',
      '-days',
      '30',
    ]);
  });

  after(async function () {
    this.timeout(60_000);
    await cleanup.run();
    assert.deepEqual(cleanup.failures, []);
  });

  for (const name of ['kc/rsa', 'kc/ec']) {
    it(`${name}: the hub CA certifies the version's own public key, and openssl verifies the chain to the hub root`, async () => {
      const r = await issue(name, { commonName: 'payments signer', organization: 'Example', organizationalUnit: 'Keystores', validityDays: 30 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const view = api.keyCertificateView.parse(r.body);
      assert.equal(view.source, 'hub-ca');
      assert.equal(view.created, true);
      assert.equal(view.certificates, 3);
      const [leaf, issuing, root] = splitPem(view.chainPem);
      assert.equal(root, h.ca.certificatePem('root'), 'the chain ends at the hub root');
      assert.equal(issuing, h.ca.certificatePem('key-issuing'), 'issued by the key-issuing CA, not the TLS one');
      const base = name.replace('/', '-');
      await writeFile(file(`${base}-leaf.pem`), leaf);
      await writeFile(file(`${base}-issuing.pem`), issuing);
      await writeFile(file(`${base}-root.pem`), root);
      const out = await openssl(['verify', '-CAfile', file(`${base}-root.pem`), '-untrusted', file(`${base}-issuing.pem`), file(`${base}-leaf.pem`)]);
      assert.match(out, /: OK/);
      const pubkey = await openssl(['x509', '-in', file(`${base}-leaf.pem`), '-noout', '-pubkey']);
      assert.ok(spkiOfPem(pubkey).equals(await versionSpki(name)), "the leaf's public key is the version's");
      const text = await openssl(['x509', '-in', file(`${base}-leaf.pem`), '-noout', '-text']);
      assert.match(text, /CA:FALSE/);
      assert.match(text, /Digital Signature/);
      assert.match(text, /Subject: .*CN *= *payments signer/);
      // The audit trail names the issuing.
      const events: Array<{ actor: string }> = await h.fx.rt.ds.query("SELECT actor FROM audit_events WHERE action = 'key.certificate_issued' AND subject = $1", [`key:${name}`]);
      assert.deepEqual(
        events.map((e) => e.actor),
        ['kc-officer'],
      );
    });
  }

  it('issuing again returns the same chain (200, created false); GET returns it to an auditor; nothing new is recorded', async () => {
    const before: Array<{ n: number }> = await h.fx.rt.ds.query("SELECT count(*)::int AS n FROM ca_certificates WHERE profile = 'key'");
    const first = api.keyCertificateView.parse((await h.call('GET', `${keyPath('kc/rsa')}/certificate`, { token: auditor })).body);
    const again = await issue('kc/rsa', { commonName: 'other name' });
    assert.equal(again.status, 200);
    const view = api.keyCertificateView.parse(again.body);
    assert.equal(view.created, false);
    assert.equal(view.serial, first.serial);
    assert.equal(view.chainPem, first.chainPem);
    const afterRows: Array<{ n: number }> = await h.fx.rt.ds.query("SELECT count(*)::int AS n FROM ca_certificates WHERE profile = 'key'");
    assert.equal(afterRows[0].n, before[0].n);
    // An auditor reads, but never issues.
    const denied = await h.call('POST', `${keyPath('kc/bare')}/certificate`, { token: auditor, body: {} });
    assert.equal(denied.status, 403);
  });

  for (const [name, alg] of [
    ['kc/csr-rsa', 'sha256WithRSAEncryption'],
    ['kc/csr-ec', 'ecdsa-with-SHA256'],
  ] as const) {
    it(`${name}: a CSR signed in the hub HSM verifies with openssl, an outside CA signs it, and its chain is imported`, async () => {
      const r = await h.call('POST', `${keyPath(name)}/csr`, { token: officer, body: { commonName: 'outside signed', organization: 'Example' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const csr = api.keyCsrView.parse(r.body);
      assert.equal(csr.signatureAlgorithm, alg);
      const base = name.replace('/', '-');
      await writeFile(file(`${base}.csr`), csr.csrPem);
      const verified = await openssl(['req', '-in', file(`${base}.csr`), '-noout', '-verify']);
      assert.match(verified, /verify OK/i);
      const text = await openssl(['req', '-in', file(`${base}.csr`), '-noout', '-text']);
      assert.match(text, new RegExp(`Signature Algorithm: ${alg}`));
      const pubkey = await openssl(['req', '-in', file(`${base}.csr`), '-noout', '-pubkey']);
      assert.ok(spkiOfPem(pubkey).equals(await versionSpki(name)), "the request's public key is the version's");

      // The outside CA answers; its leaf and certificate come back as the chain.
      await openssl([
        'x509',
        '-req',
        '-in',
        file(`${base}.csr`),
        '-CA',
        file('outside-ca.pem'),
        '-CAkey',
        file('outside-ca.key'),
        '-set_serial',
        '0x1234',
        '-days',
        '20',
        '-out',
        file(`${base}-leaf.pem`),
      ]);
      const chainPem = (await readFile(file(`${base}-leaf.pem`), 'utf8')) + (await readFile(file('outside-ca.pem'), 'utf8'));
      const imported = await h.call('PUT', `${keyPath(name)}/certificate`, { token: officer, body: { chainPem } });
      assert.equal(imported.status, 200, JSON.stringify(imported.body));
      const view = api.keyCertificateView.parse(imported.body);
      assert.equal(view.source, 'imported');
      assert.equal(view.certificates, 2);
      assert.equal(view.serial, '1234');
      assert.match(view.issuer, /CN=Outside CA/);
      const shown = api.keyCertificateView.parse((await h.call('GET', `${keyPath(name)}/certificate`, { token: officer })).body);
      assert.equal(shown.chainPem, chainPem.replace(/\r\n/g, '\n'));
      const events: Array<{ n: number }> = await h.fx.rt.ds.query("SELECT count(*)::int AS n FROM audit_events WHERE action IN ('key.csr_signed', 'key.certificate_imported') AND subject = $1", [
        `key:${name}`,
      ]);
      assert.equal(events[0].n, 2);
    });
  }

  it('refuses a chain for another key (CERTIFICATE_KEY_MISMATCH) and one not signed link by link (CERTIFICATE_CHAIN_INVALID), keeping the stored chain', async () => {
    const stored = api.keyCertificateView.parse((await h.call('GET', `${keyPath('kc/csr-ec')}/certificate`, { token: officer })).body);
    // A certificate for a key made elsewhere, by the same outside CA.
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', file('other.key'), '-out', file('other.csr'), '-subj', '/CN=outside signed']);
    await openssl(['x509', '-req', '-in', file('other.csr'), '-CA', file('outside-ca.pem'), '-CAkey', file('outside-ca.key'), '-set_serial', '77', '-days', '20', '-out', file('other.pem')]);
    const otherChain = (await readFile(file('other.pem'), 'utf8')) + (await readFile(file('outside-ca.pem'), 'utf8'));
    const mismatch = await h.call('PUT', `${keyPath('kc/csr-ec')}/certificate`, { token: officer, body: { chainPem: otherChain } });
    assert.equal(mismatch.status, 409);
    assert.equal(errorCode(mismatch), 'CERTIFICATE_KEY_MISMATCH');

    // The right leaf, but followed by the hub root, which did not sign it.
    const leaf = splitPem(stored.chainPem)[0];
    const broken = await h.call('PUT', `${keyPath('kc/csr-ec')}/certificate`, { token: officer, body: { chainPem: leaf + h.ca.rootPem } });
    assert.equal(broken.status, 400);
    assert.equal(errorCode(broken), 'CERTIFICATE_CHAIN_INVALID');
    // Not a certificate at all.
    const garbage = await h.call('PUT', `${keyPath('kc/csr-ec')}/certificate`, { token: officer, body: { chainPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' } });
    assert.equal(errorCode(garbage), 'CERTIFICATE_CHAIN_INVALID');
    // Too many certificates for a package.
    const long = await h.call('PUT', `${keyPath('kc/csr-ec')}/certificate`, { token: officer, body: { chainPem: leaf.repeat(6) } });
    assert.equal(errorCode(long), 'CERTIFICATE_CHAIN_INVALID');

    const after = api.keyCertificateView.parse((await h.call('GET', `${keyPath('kc/csr-ec')}/certificate`, { token: officer })).body);
    assert.equal(after.chainPem, stored.chainPem, 'a refused import changes nothing');
  });

  it('refuses secret keys (KEY_NOT_A_PAIR), compromised versions (KEY_VERSION_NOT_CERTIFIABLE), and versions without a chain (KEY_CERTIFICATE_NOT_FOUND)', async () => {
    for (const [method, suffix, body] of [
      ['POST', 'certificate', {}],
      ['GET', 'certificate', undefined],
      ['POST', 'csr', { commonName: 'x' }],
      ['PUT', 'certificate', { chainPem: await readFile(file('outside-ca.pem'), 'utf8') }],
    ] as const) {
      const r = await h.call(method, `${keyPath('kc/aes')}/${suffix}`, { token: officer, ...(body ? { body } : {}) });
      assert.equal(r.status, 409, `${method} ${suffix}: ${JSON.stringify(r.body)}`);
      assert.equal(errorCode(r), 'KEY_NOT_A_PAIR');
    }
    const none = await h.call('GET', `${keyPath('kc/bare')}/certificate`, { token: officer });
    assert.equal(none.status, 404);
    assert.equal(errorCode(none), 'KEY_CERTIFICATE_NOT_FOUND');
    const missing = await h.call('POST', `${keyPath('kc/rsa', 9)}/certificate`, { token: officer, body: {} });
    assert.equal(errorCode(missing), 'KEY_NOT_FOUND');

    const compromised = await h.call('POST', '/v1/keys/kc%2Fgone/state', { token: officer, body: { action: 'compromise', version: 1, reason: 'test' } });
    assert.equal(compromised.status, 200, JSON.stringify(compromised.body));
    for (const [suffix, body] of [
      ['certificate', {}],
      ['csr', { commonName: 'x' }],
    ] as const) {
      const r = await h.call('POST', `${keyPath('kc/gone')}/${suffix}`, { token: officer, body });
      assert.equal(r.status, 409);
      assert.equal(errorCode(r), 'KEY_VERSION_NOT_CERTIFIABLE');
    }
  });

  it('the signed package of a key pair with a chain carries it; one without, or a secret key, carries none', async () => {
    const r = await h.call('POST', '/v1/distributions', {
      token: officer,
      body: { keys: [{ name: 'kc/rsa' }, { name: 'kc/csr-ec' }, { name: 'kc/bare' }, { name: 'kc/aes' }], to: [{ listenerId: site }] },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const rows: Array<{ payload: Buffer }> = await h.fx.rt.ds.query("SELECT payload FROM outbox WHERE subject LIKE 'keyhub.v1.to.%.package' ORDER BY id");
    const packages = new Map<string, SignedEnvelope<KeyPackage>>();
    for (const row of rows) {
      const d = decodeEnvelope(row.payload);
      assert.ok(d.ok, 'outbox payload decodes');
      const env = d.envelope as SignedEnvelope<KeyPackage>;
      assert.ok(verifyEnvelope(env, h.fx.keyring.signingSpki), 'signed by the hub');
      keyPackageSchema.parse(env.payload);
      packages.set(env.payload.key.name, env);
    }
    for (const name of ['kc/rsa', 'kc/csr-ec']) {
      const chain = packages.get(name)?.payload.key.certificateChain;
      assert.ok(chain, `${name}'s package carries its chain`);
      const shown = api.keyCertificateView.parse((await h.call('GET', `${keyPath(name)}/certificate`, { token: officer })).body);
      assert.deepEqual(
        chain.map((b64) => new X509Certificate(Buffer.from(b64, 'base64')).toString()),
        splitPem(shown.chainPem),
      );
      assert.ok(spkiOfPem(splitPem(shown.chainPem)[0]).equals(Buffer.from(packages.get(name)!.payload.key.publicKey!, 'base64')), "the leaf certifies the package's public key");
    }
    assert.equal(packages.get('kc/bare')?.payload.key.certificateChain, undefined);
    assert.equal(packages.get('kc/aes')?.payload.key.certificateChain, undefined);
    assert.equal(packages.get('kc/aes')?.payload.key.publicKey, undefined);
  });

  it('a chain moved to another version in the database is not handed out (CERTIFICATE_KEY_MISMATCH)', async () => {
    await issue('kc/bare');
    const [bare] = await h.fx.rt.ds.query("SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'kc/bare'");
    const [ec] = await h.fx.rt.ds.query("SELECT v.id FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE k.name = 'kc/ec'");
    await h.fx.rt.ds.query('UPDATE key_version_certificates SET chain = (SELECT chain FROM key_version_certificates WHERE key_version_id = $1) WHERE key_version_id = $2', [ec.id, bare.id]);
    const r = await h.call('GET', `${keyPath('kc/bare')}/certificate`, { token: officer });
    assert.equal(r.status, 409);
    assert.equal(errorCode(r), 'CERTIFICATE_KEY_MISMATCH');
  });

  it('the package schema takes a chain only with a key pair, and at most five certificates', () => {
    const der = Buffer.from('MIIB', 'base64').toString('base64');
    const base = {
      type: 'keyhub.v1.key_package',
      id: '00000000-0000-4000-8000-000000000001',
      listenerId: site,
      target: 'hsm',
      distributionId: '00000000-0000-4000-8000-000000000002',
      sequence: 1,
      issuedAt: '2026-01-01T00:00:00.000Z',
      expiresAt: '2026-01-02T00:00:00.000Z',
      wrapping: { kekId: '00000000-0000-4000-8000-000000000003', kekVersion: 1, mechanism: 'AES-KWP', blob: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    };
    const aes = { id: '00000000-0000-4000-8000-000000000004', name: 'k', version: 1, algorithm: 'AES-256', length: 32, usages: ['encrypt'], exportable: false, kcv: 'abcdef' };
    const ec = { ...aes, algorithm: 'EC-P256', usages: ['sign'], publicKey: 'MFkwEwYHKoZIzj0CAQ==' };
    assert.ok(keyPackageSchema.safeParse({ ...base, key: ec }).success, 'no chain: valid as before');
    assert.ok(keyPackageSchema.safeParse({ ...base, key: { ...ec, certificateChain: [der] } }).success);
    assert.ok(!keyPackageSchema.safeParse({ ...base, key: { ...aes, certificateChain: [der] } }).success, 'a secret key has no chain');
    assert.ok(!keyPackageSchema.safeParse({ ...base, key: { ...ec, certificateChain: Array(6).fill(der) } }).success, 'at most five');
    assert.ok(!keyPackageSchema.safeParse({ ...base, key: { ...ec, certificateChain: [] } }).success, 'never empty');
  });

  it('the keyhub CLI issues, shows, makes a CSR and imports, through the API', async () => {
    await writeFile(file('ca.pem'), h.caPem);
    const env = { PATH: process.env.PATH ?? '', HOME: dir.path, KEYHUB_CLI_HOME: path.join(dir.path, 'cli'), KEYHUB_ADDR: h.url, KEYHUB_CACERT: file('ca.pem'), KEYHUB_TOKEN: officer };
    const keyhub = async (args: string[]): Promise<unknown> => {
      const r = await run(process.execPath, [HUB_CLI, '--json', ...args], { env, timeoutMs: 60_000 });
      assert.equal(r.code, 0, `keyhub ${args.join(' ')}: ${r.stdout}${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    await createKey('kc/cli', 'EC-P256', ['sign']);
    const issued = (await keyhub(['key', 'certificate', 'kc/cli', '--cn', 'cli key', '--out', file('cli-chain.pem')])) as api.KeyCertificateView;
    assert.equal(issued.created, true);
    const written = await readFile(file('cli-chain.pem'), 'utf8');
    const [leaf, issuing, root] = splitPem(written);
    await writeFile(file('cli-leaf.pem'), leaf);
    await writeFile(file('cli-issuing.pem'), issuing);
    await writeFile(file('cli-root.pem'), root);
    assert.match(await openssl(['verify', '-CAfile', file('cli-root.pem'), '-untrusted', file('cli-issuing.pem'), file('cli-leaf.pem')]), /: OK/);
    const shown = (await keyhub(['key', 'certificate', 'kc/cli', '--show', '--version', '1'])) as api.KeyCertificateView;
    assert.equal(shown.serial, issued.serial);

    const csr = (await keyhub(['key', 'csr', 'kc/cli', '--cn', 'cli outside', '--out', file('cli.csr')])) as api.KeyCsrView;
    assert.equal(csr.signatureAlgorithm, 'ecdsa-with-SHA256');
    assert.match(await openssl(['req', '-in', file('cli.csr'), '-noout', '-verify']), /verify OK/i);
    await openssl(['x509', '-req', '-in', file('cli.csr'), '-CA', file('outside-ca.pem'), '-CAkey', file('outside-ca.key'), '-set_serial', '99', '-days', '20', '-out', file('cli-outside.pem')]);
    await writeFile(file('cli-import.pem'), (await readFile(file('cli-outside.pem'), 'utf8')) + (await readFile(file('outside-ca.pem'), 'utf8')));
    const imported = (await keyhub(['key', 'certificate', 'kc/cli', '--import', file('cli-import.pem')])) as api.KeyCertificateView;
    assert.equal(imported.source, 'imported');
    // Refusals come back with their code and exit code.
    const refused = await run(process.execPath, [HUB_CLI, '--json', 'key', 'certificate', 'kc/aes'], { env, timeoutMs: 60_000 });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout, /KEY_NOT_A_PAIR/);
  });
});
