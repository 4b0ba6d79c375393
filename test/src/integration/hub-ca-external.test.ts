/**
 * An existing CA instead of the hub's own root, through configuration and the
 * real `keyhub-server` commands: init makes the two issuing keys in the hub
 * token and hands out their public keys; a CA made with the OpenSSL CLI
 * certifies them; with its certificates named in `ca.external`, init checks
 * them and `nats-config` issues under them, and OpenSSL verifies the result
 * up to the external root.
 */
import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { HUB_SERVER } from '../harness/deployment';
import { createSoftHsm, createTestDatabase, makeTempDir, run, type ExecResult, type SoftHsmEnv, type TempDir, type TestDatabase } from '../env';

interface InitResult {
  createdKeys: string[];
  caCertificate: string | null;
  admin: { name: string } | null;
  externalCa?: { certified: boolean; publicKeys: Record<'tls-issuing' | 'key-issuing', string> };
}

describe('hub CA: an external CA named in the configuration (keyhub-server init, nats-config)', function () {
  this.timeout(180_000);
  let tmp: TempDir;
  let hsm: SoftHsmEnv;
  let db: TestDatabase;
  const file = (name: string): string => path.join(tmp.path, name);
  const openssl = async (...args: string[]): Promise<ExecResult> => run('openssl', args);
  const server = (args: string[]): Promise<ExecResult> =>
    run(process.execPath, [HUB_SERVER, '--json', ...args], {
      env: { ...process.env, ...hsm.env, KEYHUB_HSM_PIN: hsm.tokens[0].pin, KEYHUB_CONFIG: file('hub.json'), KEYHUB_HTTP_PORT: '0', KEYHUB_LOG_LEVEL: 'warn' },
      timeoutMs: 120_000,
    });
  const writeConfig = (external: Record<string, string>): Promise<void> =>
    writeFile(
      file('hub.json'),
      JSON.stringify({
        databaseUrl: db.serviceUrl,
        ownerDatabaseUrl: db.url,
        nats: { servers: ['nats://127.0.0.1:4222'] },
        hsm: { module: hsm.modulePath, tokenLabel: 'hub', pinEnv: 'KEYHUB_HSM_PIN' },
        ca: { keyLabels: { tlsIssuing: 'corp-tls-issuing', keyIssuing: 'corp-key-issuing' }, external },
      }),
    );
  const files = { rootFile: '', tlsIssuingFile: '', keyIssuingFile: '' };

  before(async () => {
    tmp = await makeTempDir('ext-ca');
    hsm = await createSoftHsm(['hub']);
    db = await createTestDatabase('keyhub_extca');
    Object.assign(files, { rootFile: file('corp-root.pem'), tlsIssuingFile: file('corp-tls.pem'), keyIssuingFile: file('corp-keys.pem') });
    await writeConfig(files);
  });

  after(async () => {
    await db?.drop();
    await hsm?.cleanup();
    await tmp?.remove();
  });

  it('init makes only the issuing keys and gives their public keys; certified by an OpenSSL CA, init and nats-config issue under it', async () => {
    const first = await server(['init', '--admin-token-file', file('admin.token'), '--ca-cert-out', file('hub-ca.pem')]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const out1 = JSON.parse(first.stdout) as InitResult;
    // The configured labels, and no root key: the root is the external CA's.
    assert.ok(out1.createdKeys.includes('corp-tls-issuing') && out1.createdKeys.includes('corp-key-issuing'), out1.createdKeys.join(','));
    assert.ok(!out1.createdKeys.some((k) => k.includes('root')), out1.createdKeys.join(','));
    assert.equal(out1.caCertificate, null);
    assert.ok(out1.admin);
    assert.equal(out1.externalCa?.certified, false);

    // The external CA, made with the OpenSSL CLI, certifies the keys the hub token holds.
    await writeFile(
      file('corp.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'x509_extensions = v3_root',
        'prompt = no',
        '[dn]',
        'O = Example Corp',
        'CN = Example Corp Root CA',
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
      file('corp.cnf'),
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      file('corp-root.key'),
      '-out',
      files.rootFile,
      '-days',
      '30',
    );
    assert.equal(root.code, 0, root.stdout + root.stderr);
    for (const [profile, out, cn] of [
      ['tls-issuing', files.tlsIssuingFile, 'Example Corp Keyhub TLS CA'],
      ['key-issuing', files.keyIssuingFile, 'Example Corp Keyhub Key CA'],
    ] as const) {
      await writeFile(file(`${profile}.pub.pem`), out1.externalCa!.publicKeys[profile]);
      const r = await openssl(
        'x509',
        '-new',
        '-subj',
        `/O=Example Corp/CN=${cn}`,
        '-force_pubkey',
        file(`${profile}.pub.pem`),
        '-CA',
        files.rootFile,
        '-CAkey',
        file('corp-root.key'),
        '-extfile',
        file('corp.cnf'),
        '-extensions',
        'v3_int',
        '-days',
        '30',
        '-out',
        out,
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }

    // init again: the certificates are checked against the token's keys, and the root is what clients pin.
    const second = await server(['init', '--admin-token-file', file('admin2.token'), '--ca-cert-out', file('hub-ca.pem')]);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    const out2 = JSON.parse(second.stdout) as InitResult;
    assert.deepEqual(
      out2.createdKeys.filter((k) => k.startsWith('corp-')),
      [],
    );
    assert.equal(out2.externalCa?.certified, true);
    assert.equal(out2.caCertificate, file('hub-ca.pem'));
    assert.equal(await readFile(file('hub-ca.pem'), 'utf8'), await readFile(files.rootFile, 'utf8'));

    // nats-config loads the CA through the configuration and issues the NATS servers' certificate under the external TLS CA.
    const nats = await server(['nats-config', '--out', file('nats')]);
    assert.equal(nats.code, 0, nats.stdout + nats.stderr);
    const written = (JSON.parse(nats.stdout) as { files: { certFile: string; caFile: string } }).files;
    assert.equal(await readFile(written.caFile, 'utf8'), await readFile(files.rootFile, 'utf8'));
    const v = await openssl('verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', files.rootFile, '-untrusted', written.certFile, written.certFile);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const issuer = await openssl('x509', '-in', written.certFile, '-noout', '-issuer');
    assert.match(issuer.stdout, /Example Corp Keyhub TLS CA/);

    // Certificates that do not certify the token's keys (swapped) are refused, as is a missing file.
    await writeConfig({ ...files, tlsIssuingFile: files.keyIssuingFile, keyIssuingFile: files.tlsIssuingFile });
    const swapped = await server(['nats-config', '--out', file('nats-swapped')]);
    assert.equal(swapped.code, 2, swapped.stdout + swapped.stderr);
    assert.match(swapped.stdout + swapped.stderr, /CONFIG_INVALID/);
    await writeConfig({ ...files, rootFile: file('no-such-root.pem') });
    const missing = await server(['nats-config', '--out', file('nats-missing')]);
    assert.equal(missing.code, 2, missing.stdout + missing.stderr);
    assert.match(missing.stdout + missing.stderr, /no-such-root\.pem/);
    await writeConfig(files);
  });
});
