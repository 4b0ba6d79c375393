/**
 * Operators' client certificates (mTLS) through the API: issued by the hub CA
 * for a key the operator made, as good as the operator's roles and no more,
 * refused at once when revoked (the certificate or the operator), and never
 * accepted from another CA or in the shape of the server's own certificate.
 * OpenSSL judges the CRL; the `keyhub` CLI runs the same flow.
 */
import { strict as assert } from 'node:assert';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { api } from '@keyhub/protocol';
import { createApiHub, type ApiHub, type ApiResponse } from '../fixtures/api-hub';
import { Cleanup } from '../bench/lib';
import { HUB_CLI } from '../harness/deployment';
import { makeTempDir, run, type TempDir } from '../env';

interface ClientCert {
  cert: string;
  key: string;
  serial: string;
}

function errorCode(r: ApiResponse): string | undefined {
  const parsed = api.apiErrorBody.safeParse(r.body);
  return parsed.success ? parsed.data.error.code : undefined;
}

function expectStatus(r: ApiResponse, status: number, what: string): ApiResponse {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
  return r;
}

function expectError(r: ApiResponse, status: number, code: string, what: string): void {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
  assert.equal(errorCode(r), code, `${what}: ${JSON.stringify(r.body)}`);
}

function newKeyPair(): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

describe('API mTLS: operator client certificates from the hub CA', function () {
  this.timeout(180_000);
  const cleanup = new Cleanup();
  let h: ApiHub;
  let tmp: TempDir;
  const file = (name: string): string => path.join(tmp.path, name);

  /** A certificate for `name`'s fresh key, asked for with `token`. */
  const certificateFor = async (name: string, token: string, body: Record<string, unknown> = {}): Promise<ClientCert> => {
    const pair = newKeyPair();
    const r = expectStatus(await h.call('POST', `/v1/operators/${name}/certificates`, { token, body: { publicKeyPem: pair.publicKeyPem, ...body } }), 201, `certificate for ${name}`);
    const issued = api.issuedCertificate.parse(r.body);
    // Issued for exactly the key the operator made, and the private key never went anywhere.
    assert.equal(new X509Certificate(issued.certificatePem).publicKey.export({ type: 'spki', format: 'pem' }).toString(), pair.publicKeyPem);
    return { cert: issued.chainPem, key: pair.privateKeyPem, serial: issued.serial };
  };
  const whoamiWith = (clientCert: { cert: string; key: string }): Promise<ApiResponse> => h.call('GET', '/v1/auth/whoami', { clientCert });
  const audit = async (action: string, subject: string): Promise<Array<{ actor: string; details: Record<string, unknown> }>> =>
    h.fx.rt.ds.query('SELECT actor, details FROM audit_events WHERE action = $1 AND subject = $2 ORDER BY seq', [action, subject]);

  before(async () => {
    h = await createApiHub(cleanup, { mtls: true });
    tmp = await makeTempDir('mtls');
    cleanup.add('temp dir', () => tmp.remove());
    const ca = expectStatus(await h.call('GET', '/v1/hub/ca', { token: h.tokens.get('admin') }), 200, 'CA bundle').body as api.CaBundle;
    await writeFile(file('root.pem'), ca.rootPem);
    await writeFile(file('tls-issuing.pem'), ca.tlsIssuingPem);
  });

  after(async () => {
    await cleanup.run();
    assert.deepEqual(cleanup.failures, []);
  });

  it('an operator gets a certificate for a key they made; with only that certificate, whoami is them with their roles', async () => {
    const token = await h.operator('mtls-alice', ['key-officer', 'auditor']);
    const alice = await certificateFor('mtls-alice', token);
    const who = expectStatus(await whoamiWith(alice), 200, 'whoami with the certificate').body as api.Whoami;
    assert.equal(who.operator.name, 'mtls-alice');
    assert.equal(who.method, 'certificate');
    assert.equal(who.token, null);
    assert.deepEqual([...who.roles].sort(), ['auditor', 'key-officer']);
    // The roles decide, as for a token: a key officer reads keys, and may not create operators.
    expectStatus(await h.call('GET', '/v1/keys', { clientCert: alice }), 200, 'reading keys');
    expectError(await h.call('POST', '/v1/operators', { clientCert: alice, body: { name: 'mtls-nope', roles: ['auditor'] } }), 403, 'PERMISSION_DENIED', 'creating an operator');
    // Issued in an audit event naming the operator, and readable by them, by admins and auditors, not by others.
    const [issued] = await audit('certificate.issued', `certificate:${alice.serial}`);
    assert.equal(issued.actor, 'mtls-alice');
    assert.equal(issued.details.operator, 'mtls-alice');
    const shown = expectStatus(await h.call('GET', `/v1/certificates/${alice.serial}`, { clientCert: alice }), 200, 'own certificate').body as api.CertificateView;
    assert.equal(shown.operator, 'mtls-alice');
    assert.equal(shown.revokedAt, null);
    expectStatus(await h.call('GET', `/v1/certificates/${alice.serial}`, { token: h.tokens.get('admin') }), 200, "an admin reads anyone's certificate");
    const other = await h.operator('mtls-bystander', ['approver']);
    expectError(await h.call('GET', `/v1/certificates/${alice.serial}`, { token: other }), 404, 'CERTIFICATE_NOT_FOUND', "another operator reads alice's certificate");
    expectError(await h.call('POST', `/v1/certificates/${alice.serial}/revoke`, { token: other }), 404, 'CERTIFICATE_NOT_FOUND', "another operator revokes alice's certificate");
    // A certificate is an unscoped credential: it may renew itself.
    const pair = newKeyPair();
    expectError(await h.call('POST', '/v1/operators/mtls-alice/certificates', { body: { publicKeyPem: pair.publicKeyPem } }), 401, 'AUTH_MISSING', 'no credential at all');
    expectStatus(await h.call('POST', '/v1/operators/mtls-alice/certificates', { clientCert: alice, body: { publicKeyPem: pair.publicKeyPem, validityDays: 7 } }), 201, 'renewal with the certificate');
  });

  it('a scoped token cannot get a certificate (it would carry every role), nor can a non-admin get one for someone else', async () => {
    const token = await h.operator('mtls-scoped', ['admin', 'auditor']);
    const scoped = (expectStatus(await h.call('POST', '/v1/tokens', { token, body: { roles: ['auditor'] } }), 201, 'scoped token').body as { token: api.IssuedToken }).token.token;
    const { publicKeyPem, privateKeyPem } = newKeyPair();
    expectError(await h.call('POST', '/v1/operators/mtls-scoped/certificates', { token: scoped, body: { publicKeyPem } }), 403, 'ROLE_ESCALATION', 'scoped token');
    const officer = await h.operator('mtls-officer', ['key-officer']);
    expectError(await h.call('POST', '/v1/operators/mtls-scoped/certificates', { token: officer, body: { publicKeyPem } }), 403, 'PERMISSION_DENIED', 'for someone else');
    // A private key is never accepted in place of the public one, and nothing was issued for this key.
    expectError(await h.call('POST', '/v1/operators/mtls-officer/certificates', { token: officer, body: { publicKeyPem: privateKeyPem } }), 400, 'INPUT_INVALID', 'a private key');
    const rows = await h.fx.rt.ds.query<unknown[]>(
      "SELECT c.serial FROM ca_certificates c JOIN operators o ON o.id = c.operator_id WHERE o.name IN ('mtls-scoped', 'mtls-officer') AND c.profile = 'operator-client'",
    );
    assert.equal(rows.length, 0);
  });

  it('revoking the certificate refuses it at once (CERTIFICATE_REVOKED), and the CRL from the API makes OpenSSL refuse it too', async () => {
    const token = await h.operator('mtls-bob', ['auditor']);
    const bob = await certificateFor('mtls-bob', token);
    const kept = await certificateFor('mtls-bob', token);
    expectStatus(await whoamiWith(bob), 200, 'before revocation');
    const r = expectStatus(await h.call('POST', `/v1/certificates/${bob.serial}/revoke?reason=keyCompromise`, { clientCert: kept }), 200, 'revocation').body as api.CertificateRevoked;
    assert.equal(r.revoked, true);
    expectError(await whoamiWith(bob), 401, 'CERTIFICATE_REVOKED', 'after revocation');
    expectStatus(await whoamiWith(kept), 200, 'the other certificate still works');
    const [event] = await audit('certificate.revoked', `certificate:${bob.serial}`);
    assert.equal(event.actor, 'mtls-bob');
    assert.equal(event.details.reason, 'keyCompromise');
    const again = expectStatus(await h.call('POST', `/v1/certificates/${bob.serial}/revoke`, { token: h.tokens.get('admin') }), 200, 'second revocation').body as api.CertificateRevoked;
    assert.equal(again.revoked, false);
    assert.equal((await audit('certificate.revoked', `certificate:${bob.serial}`)).length, 1);

    const crl = api.crlBody.parse(expectStatus(await h.call('GET', '/v1/hub/crl/tls-issuing', { clientCert: kept }), 200, 'CRL').body);
    assert.equal(crl.profile, 'tls-issuing');
    assert.ok(Buffer.from(crl.der, 'base64').equals(Buffer.from(crl.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')));
    await writeFile(file('tls-issuing.crl.pem'), crl.pem);
    await writeFile(file('bob.pem'), bob.cert);
    await writeFile(file('kept.pem'), kept.cert);
    const verify = (leaf: string) => run('openssl', ['verify', '-crl_check', '-CAfile', file('root.pem'), '-untrusted', file('tls-issuing.pem'), '-CRLfile', file('tls-issuing.crl.pem'), leaf]);
    const revoked = await verify(file('bob.pem'));
    assert.notEqual(revoked.code, 0, revoked.stdout + revoked.stderr);
    assert.match(revoked.stdout + revoked.stderr, /certificate revoked/);
    const good = await verify(file('kept.pem'));
    assert.equal(good.code, 0, good.stdout + good.stderr);
    expectStatus(await h.call('GET', '/v1/hub/crl/key-issuing', { token }), 200, 'the key issuing CA publishes one too');
    expectError(await h.call('GET', '/v1/hub/crl/root', { token }), 400, 'INPUT_INVALID', 'no root CRL through the API');
  });

  it('revoking the operator refuses their certificate at once (AUTH_REVOKED)', async () => {
    const token = await h.operator('mtls-carol', ['approver']);
    const carol = await certificateFor('mtls-carol', token);
    expectStatus(await whoamiWith(carol), 200, 'before');
    expectStatus(await h.call('POST', '/v1/operators/mtls-carol/revoke', { token: h.tokens.get('admin') }), 200, 'revoking carol');
    expectError(await whoamiWith(carol), 401, 'AUTH_REVOKED', 'after the operator was revoked');
  });

  it("a certificate from another CA, or the server's own TLS certificate, is refused (CERTIFICATE_INVALID)", async () => {
    const made = await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      file('foreign.key'),
      '-out',
      file('foreign.pem'),
      '-subj',
      '/O=Keyhub/CN=admin',
      '-days',
      '1',
      '-addext',
      'extendedKeyUsage=clientAuth',
    ]);
    assert.equal(made.code, 0, made.stderr);
    const foreign = { cert: await readFile(file('foreign.pem'), 'utf8'), key: await readFile(file('foreign.key'), 'utf8') };
    expectError(await whoamiWith(foreign), 401, 'CERTIFICATE_INVALID', 'a certificate from another CA');
    expectError(await whoamiWith(h.serverTls), 401, 'CERTIFICATE_INVALID', "the server's own certificate");
    // No client certificate and no token: nothing to authenticate with.
    expectError(await h.call('GET', '/v1/auth/whoami'), 401, 'AUTH_MISSING', 'no credential');
  });

  it('the CLI: `cert request` makes the key locally (0600), then `whoami` and `cert revoke` with only KEYHUB_CLIENT_CERT and KEYHUB_CLIENT_KEY', async () => {
    const token = await h.operator('mtls-erin', ['key-officer']);
    const env = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
      PATH: process.env.PATH,
      HOME: tmp.path,
      KEYHUB_CLI_HOME: file('cli-home'),
      KEYHUB_ADDR: h.url,
      KEYHUB_CACERT: file('root.pem'),
      ...extra,
    });
    const cli = (args: string[], extra: NodeJS.ProcessEnv) => run(process.execPath, [HUB_CLI, '--json', ...args], { env: env(extra), timeoutMs: 60_000 });
    const req = await cli(['cert', 'request', '--days', '10', '--key-out', file('erin.key'), '--cert-out', file('erin.pem')], { KEYHUB_TOKEN: token });
    assert.equal(req.code, 0, req.stdout + req.stderr);
    const out = JSON.parse(req.stdout) as { operator: string; serial: string; notAfter: string };
    assert.equal(out.operator, 'mtls-erin');
    assert.equal((await stat(file('erin.key'))).mode & 0o777, 0o600);
    const certOnly = { KEYHUB_CLIENT_CERT: file('erin.pem'), KEYHUB_CLIENT_KEY: file('erin.key') };
    const who = await cli(['whoami'], certOnly);
    assert.equal(who.code, 0, who.stdout + who.stderr);
    const me = JSON.parse(who.stdout) as api.Whoami;
    assert.deepEqual([me.operator.name, me.method, me.roles], ['mtls-erin', 'certificate', ['key-officer']]);
    // An existing key file is never overwritten.
    const again = await cli(['cert', 'request', '--key-out', file('erin.key'), '--cert-out', file('erin2.pem')], certOnly);
    assert.equal(again.code, 2, again.stdout + again.stderr);
    const revoke = await cli(['cert', 'revoke', out.serial], certOnly);
    assert.equal(revoke.code, 0, revoke.stdout + revoke.stderr);
    const after = await cli(['whoami'], certOnly);
    assert.equal(after.code, 9, after.stdout + after.stderr);
    assert.equal((JSON.parse(after.stdout) as { error: { code: string } }).error.code, 'CERTIFICATE_REVOKED');
  });
  it('for another operator: admins only, and under operator.manage an approval request; the certificate is issued at execution', async () => {
    const approver = await h.operator('mtls-approver', ['approver']);
    const token = await h.operator('mtls-dave', ['auditor']);
    const { publicKeyPem, privateKeyPem } = newKeyPair();
    // Policy off: at once.
    const direct = api.issuedCertificate.parse(
      expectStatus(await h.call('POST', '/v1/operators/mtls-dave/certificates', { token: h.tokens.get('admin'), body: { publicKeyPem } }), 201, 'admin, policy off').body,
    );
    expectStatus(await whoamiWith({ cert: direct.chainPem, key: privateKeyPem }), 200, 'dave with the certificate the admin asked for');
    expectStatus(await h.call('PUT', '/v1/policies/operator.manage', { token: h.tokens.get('admin'), body: { required: 1, enabled: true } }), 200, 'policy on');
    const pending = expectStatus(await h.call('POST', '/v1/operators/mtls-dave/certificates', { token: h.tokens.get('admin'), body: { publicKeyPem, validityDays: 30 } }), 202, 'admin, policy on')
      .body as api.ApprovalPending;
    assert.match(pending.approval.summary, /client certificate to operator mtls-dave/);
    // For oneself it never waits: the policy covers credentials for others.
    const own = newKeyPair();
    expectStatus(await h.call('POST', '/v1/operators/mtls-dave/certificates', { token, body: { publicKeyPem: own.publicKeyPem } }), 201, 'dave for himself, policy on');
    const done = expectStatus(await h.call('POST', `/v1/approvals/${pending.approval.id}/approve`, { token: approver, body: { hash: pending.approval.hash } }), 200, 'approval')
      .body as api.ApprovalRequestView;
    assert.equal(done.state, 'executed');
    const serial = String(done.result?.serial);
    const shown = expectStatus(await h.call('GET', `/v1/certificates/${serial}`, { token: h.tokens.get('admin') }), 200, 'the requester fetches it by serial').body as api.CertificateView;
    assert.equal(shown.operator, 'mtls-dave');
    const [event] = await audit('certificate.issued', `certificate:${serial}`);
    assert.equal(event.actor, 'admin');
    assert.equal(event.details.approvers, 'mtls-approver');
    const chain = shown.certificatePem + (await readFile(file('tls-issuing.pem'), 'utf8'));
    const who = expectStatus(await whoamiWith({ cert: chain, key: privateKeyPem }), 200, 'dave with the approved certificate').body as api.Whoami;
    assert.equal(who.operator.name, 'mtls-dave');
  });
});
