import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { parseTr31Header, Tr31Error, tr31HeaderFieldsFor, unwrapTr31, wrapTr31, type KeyAlgorithm, type KeyUsage, type Tr31HeaderInput, type Tr31OptionalBlock } from '@keyhub/protocol';
import { run } from '../env';
import { TR31_VECTORS } from '../fixtures/tr31/vectors';

/** The independent implementation: Python's `cryptography` (CMAC, AES, TDES) and the standard's description, no code of ours. */
const OPENER = path.resolve(__dirname, '../../src/fixtures/tr31/open_key_block.py');

type PyResult = { ok: true; header: Record<string, string>; headerText: string; key: string } | { ok: true; block: string } | { ok: false; error: string };

async function python(items: object[]): Promise<PyResult[]> {
  const r = await run('python3', [OPENER], { input: JSON.stringify(items), timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as PyResult[];
  assert.equal(out.length, items.length);
  return out;
}

interface Made {
  name: string;
  kbpk: Buffer;
  key: Buffer;
  header: Tr31HeaderInput;
  block: string;
}

/** Keyhub keys as the hub would describe them, turned into TR-31 headers by the product's mapping. */
const POLICIES: Array<{ algorithm: KeyAlgorithm; usages: KeyUsage[]; exportable: boolean; keyUsage?: string; bytes: number }> = [
  { algorithm: 'AES-128', usages: ['encrypt', 'decrypt'], exportable: false, bytes: 16 },
  { algorithm: 'AES-192', usages: ['encrypt'], exportable: true, bytes: 24 },
  { algorithm: 'AES-256', usages: ['wrap', 'unwrap'], exportable: false, bytes: 32 },
  { algorithm: 'AES-256', usages: ['wrap', 'unwrap'], exportable: true, keyUsage: 'K1', bytes: 32 },
  { algorithm: 'AES-256', usages: ['encrypt', 'decrypt'], exportable: false, keyUsage: 'P0', bytes: 32 },
  { algorithm: 'AES-128', usages: ['sign', 'verify'], exportable: false, bytes: 16 },
  { algorithm: 'AES-256', usages: ['derive'], exportable: false, bytes: 32 },
  { algorithm: 'TDES-2KEY', usages: ['encrypt', 'decrypt'], exportable: true, bytes: 16 },
  { algorithm: 'TDES-3KEY', usages: ['sign'], exportable: false, bytes: 24 },
  { algorithm: 'HMAC-SHA256', usages: ['sign', 'verify'], exportable: false, bytes: 32 },
  { algorithm: 'HMAC-SHA512', usages: ['verify'], exportable: true, bytes: 64 },
];

const BLOCK_SETS: Array<{ label: string; blocks: Tr31OptionalBlock[] }> = [
  { label: 'no optional blocks', blocks: [] },
  {
    label: 'KV + time stamp (PB added)',
    blocks: [
      { id: 'KV', data: '0001' },
      { id: 'TS', data: '20261126123000Z' },
    ],
  },
  { label: 'a 300-character block (extended length)', blocks: [{ id: 'T1', data: 'K'.repeat(300) }] },
];

function makeBlocks(): Made[] {
  const made: Made[] = [];
  POLICIES.forEach((p, i) => {
    for (const [j, set] of BLOCK_SETS.entries()) {
      // All three AES KBPK lengths, except where X9.24 forbids a KBPK weaker than the AES key.
      const kbpkLength = [32, 24, 16][(i + j) % 3];
      const kbpk = randomBytes(p.algorithm.startsWith('AES') && kbpkLength < p.bytes ? 32 : kbpkLength);
      const key = randomBytes(p.bytes);
      const header: Tr31HeaderInput = { version: 'D', ...tr31HeaderFieldsFor({ ...p, version: i + 1 }), optionalBlocks: set.blocks };
      const masked = j === 1 ? 48 : undefined;
      made.push({ name: `D ${p.algorithm} [${p.usages.join(',')}] ${set.label}`, kbpk, key, header, block: wrapTr31(kbpk, header, key, { maskedKeyLength: masked }) });
    }
  });
  for (const kbpkLen of [16, 24]) {
    for (const keyLen of [16, 24].filter((l) => l <= kbpkLen)) {
      const kbpk = randomBytes(kbpkLen);
      const key = randomBytes(keyLen);
      const header: Tr31HeaderInput = {
        version: 'B',
        ...tr31HeaderFieldsFor({ algorithm: keyLen === 16 ? 'TDES-2KEY' : 'TDES-3KEY', usages: ['wrap'], exportable: false }),
        optionalBlocks: [{ id: 'KS', data: '00604B120F9292800000' }],
      };
      made.push({ name: `B TDES ${keyLen} under ${kbpkLen}`, kbpk, key, header, block: wrapTr31(kbpk, header, key) });
    }
  }
  return made;
}

describe('TR-31: blocks Keyhub makes, opened by an independent implementation (Python cryptography)', function () {
  this.timeout(60_000);

  it('the Python opener itself opens the published vectors to the published keys', async () => {
    const out = await python(TR31_VECTORS.map((v) => ({ kbpk: v.kbpk, block: v.block })));
    out.forEach((r, i) => {
      assert.ok(r.ok && 'key' in r, `${TR31_VECTORS[i].name}: ${r.ok ? '' : r.error}`);
      assert.ok(r.key.toUpperCase() === TR31_VECTORS[i].key, `${TR31_VECTORS[i].name}: key differs`);
    });
  });

  it('every block opens to the same key and the same header (fields and exact header text) in Python', async () => {
    const made = makeBlocks();
    assert.ok(made.length >= 35);
    const out = await python(made.map((m) => ({ kbpk: m.kbpk.toString('hex'), block: m.block })));
    made.forEach((m, i) => {
      const r = out[i];
      assert.ok(r.ok && 'key' in r, `${m.name}: ${r.ok ? '' : r.error}`);
      // Compared as booleans so that a failure prints no key bytes.
      assert.ok(Buffer.from(r.key, 'hex').equals(m.key), `${m.name}: Python found another key`);
      const ours = parseTr31Header(m.block);
      assert.equal(r.headerText, ours.text, m.name);
      const { version, keyUsage, algorithm, modeOfUse, keyVersion, exportability, keyContext } = ours.header;
      assert.deepEqual(r.header, { version, keyUsage, algorithm, modeOfUse, keyVersion, exportability, keyContext }, m.name);
      assert.deepEqual(ours.header.optionalBlocks, m.header.optionalBlocks, m.name);
      assert.equal(ours.header.keyUsage, m.header.keyUsage, m.name);
    });
  });

  it('a block with one changed character (header, key data, MAC) is refused by Python and by Keyhub alike', async () => {
    const m = makeBlocks()[2];
    const swap = (i: number, to: string) => m.block.slice(0, i) + to + m.block.slice(i + 1);
    const at = [6, 11, 40, m.block.length - 1];
    // Usage digit and exportability to other valid values, then a hex digit of the key data and of the MAC.
    const tampered = [swap(6, m.block[6] === '1' ? '2' : '1'), swap(11, m.block[11] === 'E' ? 'N' : 'E'), swap(40, m.block[40] === '1' ? '2' : '1'), swap(at[3], m.block[at[3]] === '1' ? '2' : '1')];
    const out = await python(tampered.map((block) => ({ kbpk: m.kbpk.toString('hex'), block })));
    out.forEach((r, i) => assert.ok(!r.ok && /MAC/.test(r.error), `change at ${at[i]}: Python accepted or failed otherwise`));
    for (const block of tampered)
      assert.throws(
        () => unwrapTr31(m.kbpk, block),
        (e: unknown) => e instanceof Tr31Error && e.code === 'TR31_MAC_INVALID',
      );
  });

  it('and the other way round: blocks Python makes (its own random padding) open in Keyhub to the same key and header', async () => {
    const cases = [
      { kbpk: randomBytes(32), key: randomBytes(32), header: 'D####K0AB05N0000' },
      { kbpk: randomBytes(16), key: randomBytes(16), header: 'D####D0AE00E0200KV080001PB080000' },
      { kbpk: randomBytes(24), key: randomBytes(24), header: 'B####P0TD00N0000' },
    ];
    const out = await python(cases.map((c) => ({ op: 'wrap', kbpk: c.kbpk.toString('hex'), key: c.key.toString('hex'), header: c.header })));
    out.forEach((r, i) => {
      assert.ok(r.ok && 'block' in r);
      const opened = unwrapTr31(cases[i].kbpk, r.block);
      assert.ok(opened.key.equals(cases[i].key), `case ${i}: Keyhub found another key`);
      assert.equal(opened.headerText, cases[i].header.replace('####', String(r.block.length).padStart(4, '0')));
    });
  });
});
