import { strict as assert } from 'node:assert';
import { createPublicKey, generateKeyPairSync, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as path from 'node:path';
import type { DataSource } from 'typeorm';
import { KeyhubError, Pkcs11Hsm } from '@keyhub/shared';
import { derToPem, HubCa, serverTlsMaterial, verifyClientCertificate, type IssuedLeaf } from '@keyhub/hub/dist/crypto/ca';
import { createDataSource } from '@keyhub/hub/dist/store/data-source';
import { createSoftHsm, createTestDatabase, makeTempDir, pkcs11Tool, run, type SoftHsmEnv, type TempDir, type TestDatabase } from '../env';

/** OpenSSL's CLI is the independent judge of every certificate and CRL here. */
async function openssl(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await run('openssl', args);
  return { code: r.code, out: r.stdout + r.stderr };
}

function spkiOf(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

function spkiOfCert(der: Buffer): Buffer {
  return spkiOf(new X509Certificate(der).publicKey);
}

interface Answer {
  status: number;
  body: string;
}

/** One GET over TLS; `ca` is the only trust anchor the client has. */
function get(port: number, options: https.RequestOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', method: 'GET', agent: false, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('hub CA: keys in the HSM, certificates by node-forge, checked by OpenSSL', function () {
  this.timeout(120_000);
  let env: SoftHsmEnv;
  let hsm: Pkcs11Hsm;
  let db: TestDatabase;
  let ds: DataSource;
  let tmp: TempDir;
  let ca: HubCa;
  const operatorId = randomUUID();
  const operatorName = 'alice';
  const file = (name: string): string => path.join(tmp.path, name);

  before(async () => {
    env = await createSoftHsm(['hubca']);
    // One C_Initialize per process reads SOFTHSM2_CONF: set it before the first open.
    process.env.SOFTHSM2_CONF = env.confPath;
    process.env.KEYHUB_TEST_HUBCA_PIN = env.tokens[0].pin;
    hsm = await Pkcs11Hsm.open({ module: env.modulePath, tokenLabel: 'hubca', pinEnv: 'KEYHUB_TEST_HUBCA_PIN' });
    db = await createTestDatabase('keyhub_ca');
    ds = createDataSource(db.url, 4);
    await ds.initialize();
    await ds.runMigrations();
    tmp = await makeTempDir('hubca');
    await ds.query("INSERT INTO operators (id, name, roles, state, created_by) VALUES ($1, $2, '{admin}', 'active', 'test')", [operatorId, operatorName]);
    const first = await HubCa.ensure(hsm, ds, 'test');
    assert.deepEqual(first.createdKeys, ['keyhub-ca-root', 'keyhub-ca-tls', 'keyhub-ca-keys']);
    assert.deepEqual(
      first.issued.map((c) => c.profile),
      ['root', 'tls-issuing', 'key-issuing'],
    );
    ca = first.ca;
    await writeFile(file('root.pem'), ca.rootPem);
    await writeFile(file('tls-issuing.pem'), ca.certificatePem('tls-issuing'));
    await writeFile(file('key-issuing.pem'), ca.certificatePem('key-issuing'));
  });

  after(async () => {
    await ds?.destroy();
    await db?.drop();
    await hsm?.close();
    await env?.cleanup();
    await tmp?.remove();
  });

  async function saveLeaf(name: string, leaf: IssuedLeaf): Promise<string> {
    await writeFile(file(`${name}.pem`), leaf.pem);
    return file(`${name}.pem`);
  }

  async function verifyChain(leafPath: string, intermediate: string, ...extra: string[]): Promise<{ code: number; out: string }> {
    return openssl('verify', '-CAfile', file('root.pem'), '-untrusted', file(intermediate), ...extra, leafPath);
  }

  it('is idempotent: a second ensure and a load find the same keys and certificates', async () => {
    const again = await HubCa.ensure(hsm, ds, 'test');
    assert.deepEqual(again.createdKeys, []);
    assert.deepEqual(again.issued, []);
    const loaded = await HubCa.load(hsm, ds);
    for (const profile of ['root', 'tls-issuing', 'key-issuing'] as const) {
      assert.equal(again.ca.issuers[profile].serial, ca.issuers[profile].serial);
      assert.equal(loaded.issuers[profile].serial, ca.issuers[profile].serial);
    }
    const rows: Array<{ profile: string; n: string }> = await ds.query('SELECT profile, count(*) AS n FROM ca_certificates GROUP BY profile ORDER BY profile');
    assert.deepEqual(
      rows.map((r) => [r.profile, Number(r.n)]),
      [
        ['key-issuing', 1],
        ['root', 1],
        ['tls-issuing', 1],
      ],
    );
  });

  it('keeps the three CA private keys in the token, sensitive and not extractable', async () => {
    const t = env.tokens[0];
    const r = await pkcs11Tool(env, ['--token-label', t.label, '--login', '--pin', t.pin, '--list-objects', '--type', 'privkey']);
    assert.equal(r.code, 0, r.stderr);
    const blocks = r.stdout.split(/\n(?=\S)/);
    for (const label of ['keyhub-ca-root', 'keyhub-ca-tls', 'keyhub-ca-keys']) {
      const block = blocks.find((b) => new RegExp(`label:\\s+${label}\\s*$`, 'm').test(b));
      assert.ok(block, `no private key ${label} in\n${r.stdout}`);
      assert.match(block, /^Private Key Object; EC/);
      const access = /Access:\s+(.*)$/m.exec(block)?.[1] ?? '';
      const flags = access.split(',').map((f) => f.trim());
      assert.ok(flags.includes('sensitive'), `${label}: ${access}`);
      assert.ok(flags.includes('never extractable'), `${label}: ${access}`);
      assert.ok(!flags.includes('extractable'), `${label}: ${access}`);
    }
  });

  it('makes CA certificates OpenSSL reads as a root and two pathLen 0 intermediates', async () => {
    const root = (await openssl('x509', '-in', file('root.pem'), '-text', '-noout')).out;
    assert.match(root, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(root, /Subject: O = Keyhub, serialNumber = [0-9a-f]{16}, CN = Keyhub Root CA/);
    assert.match(root, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    assert.match(root, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(root, /X509v3 Subject Key Identifier/);
    assert.match(root, /ASN1 OID: prime256v1/);
    for (const name of ['tls-issuing', 'key-issuing']) {
      const text = (await openssl('x509', '-in', file(`${name}.pem`), '-text', '-noout')).out;
      assert.match(text, /Issuer: O = Keyhub, serialNumber = [0-9a-f]{16}, CN = Keyhub Root CA/);
      assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
      assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
      assert.match(text, /X509v3 Authority Key Identifier/);
      const v = await openssl('verify', '-x509_strict', '-CAfile', file('root.pem'), file(`${name}.pem`));
      assert.equal(v.code, 0, v.out);
    }
    const v = await openssl('verify', '-x509_strict', '-CAfile', file('root.pem'), file('root.pem'));
    assert.equal(v.code, 0, v.out);
  });

  it('issues a TLS server certificate: serverAuth, SAN, 90 days, a positive 16-byte serial', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaf = await ca.issueTlsServerCertificate(spkiOf(publicKey), { dnsNames: ['localhost', 'hub.example.test'], ipAddresses: ['127.0.0.1', '::1'], actor: 'test' });
    const p = await saveLeaf('server', leaf);
    const text = (await openssl('x509', '-in', p, '-text', '-noout')).out;
    assert.match(text, /X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
    assert.match(text, /DNS:localhost, DNS:hub.example.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.equal((await openssl('x509', '-in', p, '-serial', '-noout')).out.trim(), `serial=${leaf.serial.toUpperCase()}`);
    assert.match(leaf.serial, /^[0-7][0-9a-f]{31}$/);
    assert.equal(Math.round((leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 86_400_000), 90);
    assert.equal(leaf.chainPem, leaf.pem + ca.certificatePem('tls-issuing'));
    const v = await verifyChain(p, 'tls-issuing.pem', '-x509_strict', '-purpose', 'sslserver');
    assert.equal(v.code, 0, v.out);
    const row = await ca.lookup(leaf.serial);
    assert.equal(row?.profile, 'tls-server');
    assert.equal(row?.createdBy, 'test');
    assert.equal(row?.issuerSerial, ca.issuers['tls-issuing'].serial);
    assert.ok(row?.der.equals(leaf.der));
  });

  it('issues an operator client certificate naming the operator in CN, UID and a SAN URI', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaf = await ca.issueClientCertificate(operatorId, operatorName, spkiOf(publicKey), { actor: 'test', validityDays: 30 });
    const p = await saveLeaf('client', leaf);
    const text = (await openssl('x509', '-in', p, '-text', '-noout')).out;
    assert.match(text, new RegExp(`Subject: O = Keyhub, UID = ${operatorId}, CN = ${operatorName}`));
    assert.match(text, /X509v3 Extended Key Usage:\s+TLS Web Client Authentication\n/);
    assert.match(text, new RegExp(`URI:urn:keyhub:operator:${operatorId}`));
    const v = await verifyChain(p, 'tls-issuing.pem', '-x509_strict', '-purpose', 'sslclient');
    assert.equal(v.code, 0, v.out);
    assert.equal((await ca.lookup(leaf.serial))?.operatorId, operatorId);
    await assert.rejects(ca.issueClientCertificate(randomUUID(), 'ghost', spkiOf(publicKey), { actor: 'test' }), (e: unknown) => KeyhubError.is(e, 'OPERATOR_NOT_FOUND'));
  });

  it('issues key certificates under the key issuing CA only, for EC and RSA keys', async () => {
    for (const [name, pair] of [
      ['key-ec', generateKeyPairSync('ec', { namedCurve: 'P-256' })],
      ['key-rsa', generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ] as const) {
      const leaf = await ca.issueKeyCertificate(spkiOf(pair.publicKey), { commonName: `payments ${name}`, organization: 'Example Bank', country: 'DE' }, { actor: 'test' });
      const p = await saveLeaf(name, leaf);
      const text = (await openssl('x509', '-in', p, '-text', '-noout')).out;
      assert.match(text, new RegExp(`Subject: C = DE, O = Example Bank, CN = payments ${name}`));
      assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
      assert.match(text, /CA:FALSE/);
      assert.doesNotMatch(text, /Extended Key Usage/);
      assert.equal(Math.round((leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 86_400_000), 365);
      const v = await verifyChain(p, 'key-issuing.pem', '-x509_strict');
      assert.equal(v.code, 0, v.out);
      const wrong = await verifyChain(p, 'tls-issuing.pem');
      assert.notEqual(wrong.code, 0, 'a key certificate must not chain through the TLS issuing CA');
    }
    await assert.rejects(ca.issueKeyCertificate(Buffer.from('not a key'), { commonName: 'x' }, { actor: 'test' }), (e: unknown) => KeyhubError.is(e, 'INPUT_INVALID'));
  });

  it('fails verification of a certificate with one byte changed', async () => {
    const der = Buffer.from((await readFile(file('client.pem'), 'utf8')).replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const at = der.indexOf(Buffer.from(operatorName, 'utf8'));
    assert.ok(at > 0);
    const tampered = Buffer.from(der);
    tampered[at] ^= 0x01; // "alice" becomes "`lice": still a valid certificate, no longer the one signed
    await writeFile(file('tampered.pem'), derToPem(tampered, 'CERTIFICATE'));
    const v = await verifyChain(file('tampered.pem'), 'tls-issuing.pem');
    assert.notEqual(v.code, 0);
    assert.match(v.out, /certificate signature failure/);
    await assert.rejects(verifyClientCertificate(ca, tampered), (e: unknown) => KeyhubError.is(e, 'CERTIFICATE_INVALID'));
  });

  it('serves TLS with serverTlsMaterial: a client pinning our root connects, one pinning another CA does not; mTLS names the operator', async () => {
    const material = await serverTlsMaterial(ca, { hostnames: ['localhost'], ips: ['127.0.0.1'], actor: 'test' });
    const server = https.createServer({ key: material.key, cert: material.cert, ca: material.ca, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      if (!peer || !peer.raw) {
        res.writeHead(200).end('anonymous');
        return;
      }
      verifyClientCertificate(ca, peer.raw).then(
        (client) => res.writeHead(200).end(`operator ${client.operatorId}`),
        (err: unknown) => res.writeHead(401).end(KeyhubError.is(err) ? err.code : 'error'),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      assert.deepEqual(await get(port, { ca: ca.rootPem }), { status: 200, body: 'anonymous' });
      assert.deepEqual(await get(port, { ca: ca.rootPem, servername: 'localhost' }), { status: 200, body: 'anonymous' });

      const other = await openssl(
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        '/CN=Other CA',
        '-days',
        '1',
        '-keyout',
        file('other.key'),
        '-out',
        file('other.pem'),
      );
      assert.equal(other.code, 0, other.out);
      await assert.rejects(get(port, { ca: await readFile(file('other.pem'), 'utf8') }), (e: unknown) => (e as { code?: string }).code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY');

      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const client = await ca.issueClientCertificate(operatorId, operatorName, spkiOf(publicKey), { actor: 'test' });
      const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      assert.deepEqual(await get(port, { ca: ca.rootPem, key, cert: client.chainPem }), { status: 200, body: `operator ${operatorId}` });

      // A server certificate is ours and valid, but not an operator's.
      const { publicKey: serverPub, privateKey: serverPriv } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const notClient = await ca.issueTlsServerCertificate(spkiOf(serverPub), { dnsNames: ['client.example.test'], actor: 'test' });
      const serverKey = serverPriv.export({ type: 'pkcs8', format: 'pem' }).toString();
      assert.deepEqual(await get(port, { ca: ca.rootPem, key: serverKey, cert: notClient.chainPem }), { status: 401, body: 'CERTIFICATE_INVALID' });

      await ca.revoke(client.serial, 'test', 'keyCompromise');
      assert.deepEqual(await get(port, { ca: ca.rootPem, key, cert: client.chainPem }), { status: 401, body: 'CERTIFICATE_REVOKED' });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('refuses at the mTLS check what the hub did not issue to an operator', async () => {
    const keyLeaf = await readFile(file('key-ec.pem'), 'utf8');
    const der = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    await assert.rejects(verifyClientCertificate(ca, der(keyLeaf)), (e: unknown) => KeyhubError.is(e, 'CERTIFICATE_INVALID'));
    await assert.rejects(verifyClientCertificate(ca, der(await readFile(file('other.pem'), 'utf8'))), (e: unknown) => KeyhubError.is(e, 'CERTIFICATE_INVALID'));
    await assert.rejects(verifyClientCertificate(ca, Buffer.from('garbage')), (e: unknown) => KeyhubError.is(e, 'CERTIFICATE_INVALID'));
    const client = await readFile(file('client.pem'), 'utf8');
    assert.equal((await verifyClientCertificate(ca, der(client))).operatorId, operatorId);
    await ds.query("UPDATE operators SET state = 'revoked' WHERE id = $1", [operatorId]);
    try {
      await assert.rejects(verifyClientCertificate(ca, der(client)), (e: unknown) => KeyhubError.is(e, 'AUTH_REVOKED'));
    } finally {
      await ds.query("UPDATE operators SET state = 'active' WHERE id = $1", [operatorId]);
    }
  });

  it('publishes revocations in a CRL signed by the issuing CA, which OpenSSL enforces with -crl_check', async () => {
    const before = await ca.crlDer('tls-issuing');
    await writeFile(file('crl-before.pem'), derToPem(before, 'X509 CRL'));
    const clean = await verifyChain(file('client.pem'), 'tls-issuing.pem', '-crl_check', '-CRLfile', file('crl-before.pem'));
    assert.equal(clean.code, 0, clean.out);

    const serial = (await openssl('x509', '-in', file('client.pem'), '-serial', '-noout')).out.trim().slice('serial='.length);
    const first = await ca.revoke(serial, 'test', 'affiliationChanged');
    assert.equal(first.changed, true);
    assert.equal(first.certificate.revokedBy, 'test');
    const second = await ca.revoke(serial, 'someone else', 'superseded');
    assert.equal(second.changed, false);
    assert.equal(second.certificate.revocationReason, 'affiliationChanged');
    assert.equal(await ca.isRevoked(serial), true);
    await assert.rejects(ca.revoke('0123', 'test', 'superseded'), (e: unknown) => KeyhubError.is(e));

    const after = await ca.crlDer('tls-issuing');
    await writeFile(file('crl.pem'), derToPem(after, 'X509 CRL'));
    await writeFile(file('tls-chain.pem'), ca.rootPem + ca.certificatePem('tls-issuing'));
    const crlText = await openssl('crl', '-in', file('crl.pem'), '-text', '-noout', '-CAfile', file('tls-chain.pem'));
    assert.match(crlText.out, /verify OK/);
    assert.match(crlText.out, /Version 2/);
    assert.match(crlText.out, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(crlText.out, /X509v3 CRL Number/);
    assert.match(crlText.out, /X509v3 Authority Key Identifier/);
    assert.match(crlText.out, new RegExp(`Serial Number: ${serial}`, 'i'));
    assert.match(crlText.out, /Affiliation Changed/);

    const revoked = await verifyChain(file('client.pem'), 'tls-issuing.pem', '-crl_check', '-CRLfile', file('crl.pem'));
    assert.notEqual(revoked.code, 0);
    assert.match(revoked.out, /certificate revoked/);
    const server = await verifyChain(file('server.pem'), 'tls-issuing.pem', '-crl_check', '-CRLfile', file('crl.pem'));
    assert.equal(server.code, 0, server.out);
    await assert.rejects(verifyClientCertificate(ca, (await ca.lookup(serial))?.der ?? Buffer.alloc(0)), (e: unknown) => KeyhubError.is(e, 'CERTIFICATE_REVOKED'));

    const keyCrl = await ca.crlDer('key-issuing');
    await writeFile(file('key-crl.pem'), derToPem(keyCrl, 'X509 CRL'));
    const keyCheck = await verifyChain(file('key-ec.pem'), 'key-issuing.pem', '-crl_check', '-CRLfile', file('key-crl.pem'));
    assert.equal(keyCheck.code, 0, keyCheck.out);
  });

  it('does not trust the database: a CA row that certifies another key is not used', async () => {
    const tls = ca.issuers['tls-issuing'].serial;
    const keys = ca.issuers['key-issuing'];
    await ds.query('UPDATE ca_certificates SET der = $2 WHERE serial = $1', [tls, keys.der]);
    try {
      await assert.rejects(HubCa.load(hsm, ds), (e: unknown) => KeyhubError.is(e, 'NOT_INITIALIZED'));
    } finally {
      await ds.query('UPDATE ca_certificates SET der = $2 WHERE serial = $1', [tls, ca.issuers['tls-issuing'].der]);
    }
    assert.equal((await HubCa.load(hsm, ds)).issuers['tls-issuing'].serial, tls);
  });
  it('can issue under an external root named by configuration, its intermediates certifying the token keys', async () => {
    await writeFile(
      file('ext.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'x509_extensions = v3_root',
        'prompt = no',
        '[dn]',
        'CN = Example External Root',
        '[v3_root]',
        'basicConstraints = critical, CA:TRUE',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        '[v3_int]',
        'basicConstraints = critical, CA:TRUE, pathlen:0',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid:always',
        '',
      ].join('\n'),
    );
    const root = await openssl(
      'req',
      '-x509',
      '-config',
      file('ext.cnf'),
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      file('ext-root.key'),
      '-out',
      file('ext-root.pem'),
      '-days',
      '30',
    );
    assert.equal(root.code, 0, root.out);
    // The external CA certifies the issuing keys the hub already holds (its SHA-1 key identifiers, not ours).
    const certify = async (profile: 'tls-issuing' | 'key-issuing', cn: string): Promise<string> => {
      const pub = createPublicKey({ key: spkiOfCert(ca.issuers[profile].der), format: 'der', type: 'spki' })
        .export({ type: 'spki', format: 'pem' })
        .toString();
      await writeFile(file(`ext-${profile}-pub.pem`), pub);
      const r = await openssl(
        'x509',
        '-new',
        '-subj',
        `/CN=${cn}`,
        '-force_pubkey',
        file(`ext-${profile}-pub.pem`),
        '-CA',
        file('ext-root.pem'),
        '-CAkey',
        file('ext-root.key'),
        '-extfile',
        file('ext.cnf'),
        '-extensions',
        'v3_int',
        '-days',
        '30',
        '-out',
        file(`ext-${profile}.pem`),
      );
      assert.equal(r.code, 0, r.out);
      return readFile(file(`ext-${profile}.pem`), 'utf8');
    };
    const external = { root: await readFile(file('ext-root.pem'), 'utf8'), tlsIssuing: await certify('tls-issuing', 'Example TLS CA'), keyIssuing: await certify('key-issuing', 'Example Key CA') };
    const ext = await HubCa.load(hsm, ds, { external });
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaf = await ext.issueTlsServerCertificate(spkiOf(publicKey), { dnsNames: ['localhost'], actor: 'test' });
    await writeFile(file('ext-leaf.pem'), leaf.pem);
    const v = await openssl('verify', '-x509_strict', '-CAfile', file('ext-root.pem'), '-untrusted', file('ext-tls-issuing.pem'), file('ext-leaf.pem'));
    assert.equal(v.code, 0, v.out);
    assert.equal(leaf.rootPem, ext.rootPem);
    await assert.rejects(ext.crlDer('root'), (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID'));
    await assert.rejects(HubCa.load(hsm, ds, { external: { ...external, tlsIssuing: external.keyIssuing } }), (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID'));
  });

  it('lists a revoked issuing CA on the root CRL and never certifies its key again', async () => {
    const tls = ca.issuers['tls-issuing'].serial;
    await ca.revoke(tls, 'test', 'cACompromise');
    await writeFile(file('root-crl.pem'), derToPem(await ca.crlDer('root'), 'X509 CRL'));
    await writeFile(file('all-crls.pem'), (await readFile(file('root-crl.pem'), 'utf8')) + derToPem(await ca.crlDer('tls-issuing'), 'X509 CRL'));
    const v = await verifyChain(file('server.pem'), 'tls-issuing.pem', '-crl_check_all', '-CRLfile', file('all-crls.pem'));
    assert.notEqual(v.code, 0);
    assert.match(v.out, /certificate revoked/);
    await assert.rejects(HubCa.load(hsm, ds), (e: unknown) => KeyhubError.is(e, 'NOT_INITIALIZED'));
    await assert.rejects(HubCa.ensure(hsm, ds, 'test'), (e: unknown) => KeyhubError.is(e, 'CONFIG_INVALID'));
    await assert.rejects(ca.revoke(ca.issuers.root.serial, 'test', 'cACompromise'), (e: unknown) => KeyhubError.is(e, 'INPUT_INVALID'));
  });
});
