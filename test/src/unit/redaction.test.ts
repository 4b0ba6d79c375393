import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { api } from '@keyhub/protocol';
import { createLogger, redactSecrets, terminalSafe } from '@keyhub/shared';

/** RFC 4648 base32 without padding, as NKEYs use it. */
function base32(buf: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** CRC-16/XMODEM, the NKEY checksum. */
function crc16(buf: Buffer): number {
  let crc = 0;
  for (const b of buf) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** An NKEY seed encoded the way @nats-io/nkeys encodes one (prefix byte S + type, 32 random bytes, CRC). */
function nkeySeed(type: 'user' | 'account' | 'operator'): string {
  const prefix = { user: 20 << 3, account: 0, operator: 14 << 3 }[type];
  const seedPrefix = 18 << 3;
  const raw = Buffer.concat([Buffer.from([seedPrefix | (prefix >> 5), (prefix & 31) << 3]), randomBytes(32)]);
  const crc = Buffer.alloc(2);
  crc.writeUInt16LE(crc16(raw));
  return base32(Buffer.concat([raw, crc]));
}

const b64url = (n: number) => randomBytes(n).toString('base64url');
const jwt = () => `eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.${b64url(180)}.${b64url(64)}`;
const apiToken = () => `khub_${randomBytes(16).toString('hex')}_${b64url(32)}`;

function credsFile(seed: string, userJwt: string): string {
  return `-----BEGIN NATS USER JWT-----
${userJwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
${seed}
------END USER NKEY SEED------

*************************************************************
`;
}

describe('secret redaction in logs and terminal output', () => {
  it('the test seeds have the real NKEY shape (SU, SA, SO; 58 characters)', () => {
    assert.match(nkeySeed('user'), /^SU[A-Z2-7]{56}$/);
    assert.match(nkeySeed('account'), /^SA[A-Z2-7]{56}$/);
    assert.match(nkeySeed('operator'), /^SO[A-Z2-7]{56}$/);
    assert.ok(api.parseApiToken(apiToken()), 'the test token is a well-formed API token');
  });

  it('URLs with credentials lose their user-info, and only that', () => {
    const cases: Array<[string, string]> = [
      ['cannot connect to nats://alice:s3cr3t@nats.example:4222', 'cannot connect to nats://[redacted]@nats.example:4222'],
      ['postgres://keyhub:hunter2@db:5432/keyhub?sslmode=require', 'postgres://[redacted]@db:5432/keyhub?sslmode=require'],
      ['tls://sometoken@127.0.0.1:4222,nats://b:c@x', 'tls://[redacted]@127.0.0.1:4222,nats://[redacted]@x'],
      ['https://user:p%40ss@hub.example/v1/keys', 'https://[redacted]@hub.example/v1/keys'],
    ];
    for (const [input, expected] of cases) assert.equal(redactSecrets(input), expected);
    for (const clean of ['nats://127.0.0.1:4222', 'https://hub.example/v1/keys?x=a@b', 'mail alice@example.com']) assert.equal(redactSecrets(clean), clean);
  });

  it('API tokens (api.TOKEN_LIKE), NKEY seeds, JWTs and creds-file contents are removed wherever they appear', () => {
    const token = apiToken();
    const seeds = [nkeySeed('user'), nkeySeed('account'), nkeySeed('operator')];
    const userJwt = jwt();
    const creds = credsFile(seeds[0], userJwt);
    const text = `token ${token} seed ${seeds[1]},${seeds[2]}; bearer Bearer ${token}; jwt=${userJwt}\n${creds}`;
    const out = redactSecrets(text);
    for (const secret of [token, ...seeds, userJwt]) assert.ok(!out.includes(secret), `${secret.slice(0, 8)}... leaked: ${out}`);
    assert.match(out, /\[redacted token\]/);
    assert.match(out, /\[redacted seed\]/);
    assert.match(out, /\[redacted nats user jwt\]/);
    assert.match(out, /\[redacted user nkey seed\]/);
    // A creds file with its newlines escaped (as inside a JSON log line) goes too.
    const escaped = redactSecrets(JSON.stringify({ detail: creds }));
    assert.ok(!escaped.includes(seeds[0]) && !escaped.includes(userJwt), escaped);
    assert.doesNotThrow(() => JSON.parse(escaped));
    // Public material in PEM blocks stays: certificates are no secret.
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    assert.equal(redactSecrets(cert), cert);
    const pkcs8 = '-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----';
    assert.equal(redactSecrets(pkcs8), '[redacted private key]');
  });

  it('key=value secrets in connection strings are masked', () => {
    assert.equal(redactSecrets('host=db user=keyhub password=hunter2 dbname=k'), 'host=db user=keyhub password=[redacted] dbname=k');
    assert.equal(redactSecrets('--so-pin=1234 pin=5678'), '--so-pin=[redacted] pin=[redacted]');
  });

  it('the logger redacts them in messages, fields, bound fields and errors', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const token = apiToken();
    const seed = nkeySeed('user');
    const logger = createLogger('redaction-test', 'debug', sink).child({ server: 'nats://svc:pw@nats:4222' });
    logger.info({ url: 'postgres://k:hunter2@db/k', nested: { creds: 'x', note: `seed ${seed}` } }, `token ${token} used`);
    logger.warn({ err: new Error(`connect failed for nats://u:p4ss@host; seed ${seed}`) }, 'bus down');
    logger.error(`plain message with ${token}`);
    await new Promise((r) => setImmediate(r));
    const all = lines.join('');
    assert.equal(lines.length, 3, all);
    for (const secret of [token, seed, 'hunter2', 'p4ss', 'svc:pw']) assert.ok(!all.includes(secret), `${secret} leaked: ${all}`);
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line);
    assert.match(all, /nats:\/\/\[redacted\]@host/);
  });

  it('terminal output escapes control and bidi characters from operator-supplied strings', () => {
    assert.equal(terminalSafe('site-a.example'), 'site-a.example');
    assert.equal(terminalSafe('evil\x1b]0;pwned\x07host'), 'evil\\x1b]0;pwned\\x07host');
    assert.equal(terminalSafe('line\nbreak\rback'), 'line\\x0abreak\\x0dback');
    assert.equal(terminalSafe('c1\u009b31m'), 'c1\\x9b31m');
    assert.equal(terminalSafe('abc\u202edcba'), 'abc\\u202edcba');
    assert.equal(terminalSafe('back\\slash'), 'back\\\\slash');
  });
});
