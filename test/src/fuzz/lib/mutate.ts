import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { LIMITS, type SignedEnvelope } from '@keyhub/protocol';
import { FOREIGN_TYPES, protocolMessageTypes } from './messages';

/*
 * Mutations of signed envelopes, as data (recipes) that fast-check generates
 * and prints, applied to raw JSON text so that what JSON.stringify cannot
 * write can be sent too: duplicate keys, `__proto__` as an own key, escaped
 * spellings, lone surrogates, number forms, bytes that are not UTF-8.
 */

/** JSON as a tree of raw tokens: objects keep their entries in order and may repeat a key. */
export type JNode = { t: 'raw'; text: string } | { t: 'arr'; items: JNode[] } | { t: 'obj'; entries: Array<{ key: string; value: JNode }> };

export function toNode(v: unknown): JNode {
  if (Array.isArray(v)) return { t: 'arr', items: v.map(toNode) };
  if (v !== null && typeof v === 'object')
    return {
      t: 'obj',
      entries: Object.entries(v as Record<string, unknown>)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => ({ key: JSON.stringify(k), value: toNode(x) })),
    };
  return { t: 'raw', text: JSON.stringify(v) ?? 'null' };
}

export function render(n: JNode): string {
  if (n.t === 'raw') return n.text;
  if (n.t === 'arr') return `[${n.items.map(render).join(',')}]`;
  return `{${n.entries.map((e) => `${e.key}:${render(e.value)}`).join(',')}}`;
}

function walk(n: JNode, visit: (n: JNode) => void): void {
  visit(n);
  if (n.t === 'arr') n.items.forEach((c) => walk(c, visit));
  if (n.t === 'obj') n.entries.forEach((e) => walk(e.value, visit));
}

function nodes(root: JNode, kind: JNode['t']): JNode[] {
  const out: JNode[] = [];
  walk(root, (n) => n.t === kind && out.push(n));
  return out;
}

/** Replaces a node in place (its parent keeps the same object). */
function replace(target: JNode, by: JNode): void {
  const copy = structuredClone(by);
  for (const k of Object.keys(target)) delete (target as unknown as Record<string, unknown>)[k];
  Object.assign(target, copy);
}

const pick = <T>(xs: readonly T[], i: number): T | undefined => (xs.length ? xs[i % xs.length] : undefined);

function stringValue(n: JNode): string | undefined {
  if (n.t !== 'raw' || !n.text.startsWith('"')) return undefined;
  try {
    return JSON.parse(n.text) as string;
  } catch {
    return undefined;
  }
}

/** `\uXXXX` for every character: the same string to JSON.parse, other bytes on the wire. */
function escapeAll(s: string): string {
  return `"${[...s].map((ch) => [...ch].map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')).join('')}"`;
}

export const PROTO_KEYS = ['"__proto__"', '"constructor"', '"prototype"', '"\\u005f_proto__"', '"__defineGetter__"', '"toString"', '"hasOwnProperty"'];
export const PROTO_VALUES = [
  '{"polluted":true}',
  '{"isAdmin":true,"type":"keyhub.v1.key_package"}',
  '{"prototype":{"polluted":true}}',
  '{"__proto__":{"polluted":true}}',
  'null',
  '[]',
  '"x"',
  '1',
  '{"listenerId":"site-b","outcome":"imported","seq":1}',
];

const UNICODE_TRICKS = ['\u0000', '\u200b', '\u202e', '\ufeff', '\ud800', '\udfff', 'e\u0301', 'Ａ', 'а', '\u2028', '😀', '\u0085', '\\', '"', '\u001b[31m', '\r\n'];
const NUMBER_FORMS = [
  '1.0',
  '1e0',
  '1E+0',
  '-0',
  '0.0',
  '01',
  '+1',
  '0x1',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e400',
  '-1e400',
  '9007199254740993',
  '1.5',
  '-1',
  '0',
  '1e-400',
  '4294967296',
  '18446744073709551616',
];
const RENAMES = ['upper', 'space', 'homoglyph', 'escape', 'zwsp', 'empty', 'proto', 'nul'] as const;
const SIG_VARIANTS = [
  'zero',
  'random',
  'short',
  'long',
  'empty',
  'nonBase64',
  'highS',
  'flipBit',
  'algNone',
  'algMerkle',
  'merkleShift',
  'keyId',
  'drop',
  'donor',
  'numberValue',
  'urlSafe',
  'padding',
] as const;
const PREFIXES = ['', '\ufeff', ' ', '\u0000', '[', 'null', '\n\n', '{"a":1}', '\u00a0'];
const SUFFIXES = ['', ' ', '\n', 'x', '}', ',{}', '\u0000', ']', '{}', '//'];
const BAD_UTF8 = [[0xc0, 0xaf], [0xff], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xc3]];

export type TreeOp =
  | { op: 'dupKey'; obj: number; entry: number; after: boolean; value: string }
  | { op: 'protoKey'; obj: number; key: number; value: number; at: number }
  | { op: 'extraField'; obj: number; key: string; value: string }
  | { op: 'dropField'; obj: number; entry: number }
  | { op: 'renameKey'; obj: number; entry: number; how: (typeof RENAMES)[number] }
  | { op: 'replaceLeaf'; leaf: number; value: string }
  | { op: 'oversizeString'; leaf: number; length: number }
  | { op: 'oversizeArray'; arr: number; count: number }
  | { op: 'deepNest'; leaf: number; depth: number; open: '[' | '{' }
  | { op: 'unicode'; leaf: number; trick: number; at: number; replaceAll: boolean }
  | { op: 'numberForm'; leaf: number; form: number }
  | { op: 'setType'; type: number; nested: boolean }
  | { op: 'shuffle'; obj: number; seed: number }
  | { op: 'escape'; leaf: number }
  | { op: 'move'; from: number; to: number }
  | { op: 'sameKind'; leaf: number; n: number };
export type SigOp = { op: 'sig'; variant: (typeof SIG_VARIANTS)[number]; n: number };
export type TextOp =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: number[] }
  | { op: 'delete'; at: number; len: number }
  | { op: 'affix'; prefix: number; suffix: number }
  | { op: 'badUtf8'; at: number; seq: number }
  | { op: 'pad'; over: boolean };
export type Whole = { op: 'bytes'; bytes: number[] } | { op: 'json'; value: string } | { op: 'fixed'; which: number };

export interface Recipe {
  sig?: SigOp;
  tree: TreeOp[];
  text: TextOp[];
  whole?: Whole;
}

const FIXED_WHOLE = [
  '',
  'null',
  '[]',
  '{}',
  '"x"',
  '1e999',
  '{"payload":null,"signature":null}',
  '{"payload":{},"signature":{}}',
  '['.repeat(60_000),
  '{"a":'.repeat(10_000),
  ' '.repeat(LIMITS.maxMessageBytes + 1),
  '\u0000',
];

/** Everything a mutation may need besides the envelope. */
export interface MutationContext {
  /** A signature of another genuine message: cut and paste. */
  donor?: SignedEnvelope['signature'];
}

const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

function mutateSignature(env: { payload: unknown; signature?: Record<string, unknown> }, op: SigOp, ctx: MutationContext): void {
  const sig = { ...(env.signature ?? {}) };
  const value = typeof sig.value === 'string' ? Buffer.from(sig.value, 'base64') : Buffer.alloc(64);
  switch (op.variant) {
    case 'zero':
      sig.value = Buffer.alloc(64).toString('base64');
      break;
    case 'random':
      sig.value = randomBytes(64).toString('base64');
      break;
    case 'short':
      sig.value = value.subarray(0, 63).toString('base64');
      break;
    case 'long':
      sig.value = Buffer.concat([value, Buffer.from([op.n & 0xff])]).toString('base64');
      break;
    case 'empty':
      sig.value = '';
      break;
    case 'nonBase64':
      sig.value = `${String(sig.value ?? '').slice(0, 40)}!*$`;
      break;
    case 'highS': {
      // ECDSA's other valid signature of the same payload: (r, n - s).
      const s = BigInt(`0x${value.subarray(32).toString('hex')}`);
      const t = (P256_N - s).toString(16).padStart(64, '0');
      sig.value = Buffer.concat([value.subarray(0, 32), Buffer.from(t, 'hex')]).toString('base64');
      break;
    }
    case 'flipBit': {
      const b = Buffer.from(value);
      b[op.n % b.length] ^= 1 << (op.n % 8);
      sig.value = b.toString('base64');
      break;
    }
    case 'algNone':
      sig.alg = ['none', 'HS256', 'ES384', 'es256', 'ES256 ', 'RS256'][op.n % 6];
      break;
    case 'algMerkle':
      sig.alg = 'ES256-MERKLE';
      sig.batch = { size: 2 + (op.n % 5), index: op.n % 2, path: [randomBytes(32).toString('base64')] };
      break;
    case 'merkleShift':
      if (sig.batch && typeof sig.batch === 'object') {
        const b = { ...(sig.batch as Record<string, unknown>) };
        const which = op.n % 4;
        if (which === 0) b.index = (Number(b.index) + 1) % Math.max(2, Number(b.size));
        if (which === 1) b.size = Number(b.size) + 1;
        if (which === 2) b.path = [...((b.path as string[]) ?? []), randomBytes(32).toString('base64')];
        if (which === 3) b.path = [];
        sig.batch = b;
      } else sig.alg = 'ES256-MERKLE';
      break;
    case 'keyId':
      sig.keyId = ['', 'attacker', 'x'.repeat(128), '\u202e', '__proto__'][op.n % 5];
      break;
    case 'drop':
      delete env.signature;
      return;
    case 'donor':
      if (ctx.donor) Object.assign(sig, ctx.donor);
      else sig.value = randomBytes(64).toString('base64');
      break;
    case 'numberValue':
      sig.value = op.n;
      break;
    case 'urlSafe':
      sig.value = value.toString('base64url');
      break;
    case 'padding':
      // Base64 with the padding dropped, or with non-zero bits in the last character: other text, maybe the same bytes.
      sig.value = op.n % 2 ? value.toString('base64').replace(/=+$/, '') : value.toString('base64').replace(/.(?==*$)/, (c) => String.fromCharCode(c.charCodeAt(0) + 1));
      break;
  }
  env.signature = sig;
}

function applyTree(root: JNode, op: TreeOp, typeChoices: readonly string[]): void {
  const objs = nodes(root, 'obj') as Array<Extract<JNode, { t: 'obj' }>>;
  const leaves = nodes(root, 'raw') as Array<Extract<JNode, { t: 'raw' }>>;
  switch (op.op) {
    case 'dupKey': {
      const o = pick(objs, op.obj);
      const e = o && pick(o.entries, op.entry);
      if (!o || !e) return;
      const i = o.entries.indexOf(e);
      o.entries.splice(op.after ? i + 1 : i, 0, { key: e.key, value: { t: 'raw', text: op.value } });
      return;
    }
    case 'protoKey': {
      const o = pick(objs, op.obj);
      if (!o) return;
      o.entries.splice(op.at % (o.entries.length + 1), 0, { key: PROTO_KEYS[op.key % PROTO_KEYS.length], value: { t: 'raw', text: PROTO_VALUES[op.value % PROTO_VALUES.length] } });
      return;
    }
    case 'extraField': {
      const o = pick(objs, op.obj);
      if (o) o.entries.push({ key: JSON.stringify(op.key), value: { t: 'raw', text: op.value } });
      return;
    }
    case 'dropField': {
      const o = pick(objs, op.obj);
      if (o && o.entries.length) o.entries.splice(op.entry % o.entries.length, 1);
      return;
    }
    case 'renameKey': {
      const o = pick(objs, op.obj);
      const e = o && pick(o.entries, op.entry);
      if (!e) return;
      const k = JSON.parse(e.key) as string;
      const renamed: Record<(typeof RENAMES)[number], () => string> = {
        upper: () => JSON.stringify(k.toUpperCase()),
        space: () => JSON.stringify(`${k} `),
        homoglyph: () => JSON.stringify(k.replace(/[aeo]/, (c) => ({ a: 'а', e: 'е', o: 'о' })[c] ?? c)),
        escape: () => escapeAll(k),
        zwsp: () => JSON.stringify(`${k}\u200b`),
        empty: () => '""',
        proto: () => '"__proto__"',
        nul: () => JSON.stringify(`${k}\u0000`),
      };
      e.key = renamed[op.how]();
      return;
    }
    case 'replaceLeaf': {
      const l = pick(leaves, op.leaf);
      if (l) l.text = op.value;
      return;
    }
    case 'oversizeString': {
      const l = pick(leaves, op.leaf);
      if (l) l.text = JSON.stringify((stringValue(l) ?? 'x').padEnd(op.length, 'A'));
      return;
    }
    case 'oversizeArray': {
      const arrays = nodes(root, 'arr') as Array<Extract<JNode, { t: 'arr' }>>;
      const a = pick(arrays, op.arr);
      if (!a) {
        const l = pick(leaves, op.arr);
        if (l) replace(l, { t: 'arr', items: Array.from({ length: op.count }, () => ({ t: 'raw', text: l.text })) });
        return;
      }
      const item: JNode = a.items[0] ?? { t: 'raw', text: '"encrypt"' };
      while (a.items.length < op.count) a.items.push(structuredClone(item));
      return;
    }
    case 'deepNest': {
      const l = pick(leaves, op.leaf);
      if (!l) return;
      l.text = op.open === '[' ? `${'['.repeat(op.depth)}${l.text}${']'.repeat(op.depth)}` : `${'{"a":'.repeat(op.depth)}${l.text}${'}'.repeat(op.depth)}`;
      return;
    }
    case 'unicode': {
      const strings = leaves.filter((l) => stringValue(l) !== undefined);
      const l = pick(strings, op.leaf);
      if (!l) return;
      const s = stringValue(l)!;
      const trick = UNICODE_TRICKS[op.trick % UNICODE_TRICKS.length];
      const at = op.at % (s.length + 1);
      l.text = JSON.stringify(op.replaceAll ? trick : s.slice(0, at) + trick + s.slice(at));
      return;
    }
    case 'numberForm': {
      const numbers = leaves.filter((l) => /^-?\d/.test(l.text));
      const l = pick(numbers, op.leaf) ?? pick(leaves, op.leaf);
      if (l) l.text = NUMBER_FORMS[op.form % NUMBER_FORMS.length];
      return;
    }
    case 'setType': {
      const type = typeChoices[op.type % typeChoices.length];
      const payload = root.t === 'obj' ? root.entries.find((e) => e.key === '"payload"')?.value : undefined;
      const target = op.nested ? pick(objs, op.type) : payload;
      if (!target || target.t !== 'obj') return;
      const e = target.entries.find((x) => x.key === '"type"');
      if (e) e.value = { t: 'raw', text: JSON.stringify(type) };
      else target.entries.unshift({ key: '"type"', value: { t: 'raw', text: JSON.stringify(type) } });
      return;
    }
    case 'shuffle': {
      const o = pick(objs, op.obj);
      if (!o) return;
      let s = op.seed;
      for (let i = o.entries.length - 1; i > 0; i--) {
        s = (s * 1103515245 + 12345) >>> 0;
        const j = s % (i + 1);
        [o.entries[i], o.entries[j]] = [o.entries[j], o.entries[i]];
      }
      return;
    }
    case 'escape': {
      const strings = leaves.filter((l) => stringValue(l) !== undefined);
      const l = pick(strings, op.leaf);
      if (l) l.text = escapeAll(stringValue(l)!);
      return;
    }
    case 'sameKind': {
      const l = pick(leaves, op.leaf);
      if (l) l.text = sameKind(l.text, op.n);
      return;
    }
    case 'move': {
      // A value where another one belongs: the payload as signature, a sub-object as the payload, ...
      const all: JNode[] = [];
      walk(root, (n) => all.push(n));
      const from = pick(all, op.from);
      const to = pick(all, op.to);
      if (from && to && from !== to) replace(to, from);
      return;
    }
  }
}

/**
 * Another value of the same kind, which the schema still accepts: another
 * UUID, hex of the same length, another time, listener, number or base64
 * blob. Such a message parses, so only the signature can refuse it.
 */
function sameKind(text: string, n: number): string {
  if (text === 'true' || text === 'false') return text === 'true' ? 'false' : 'true';
  if (/^\d+$/.test(text)) return String(Math.max(1, Number(text) + ((n % 5) - 2 || 1)));
  let s: string;
  try {
    s = JSON.parse(text) as string;
  } catch {
    return text;
  }
  if (typeof s !== 'string') return text;
  const family = ENUMS.find((e) => e.includes(s));
  if (family) return JSON.stringify(family.filter((x) => x !== s)[n % (family.length - 1)]);
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s)) return JSON.stringify(randomUUIDLike(n));
  if (/^[0-9a-f]+$/.test(s)) return JSON.stringify(s.slice(0, -1) + ((parseInt(s.slice(-1), 16) + 1 + (n % 14)) % 16).toString(16));
  if (!Number.isNaN(Date.parse(s)) && /^\d{4}-/.test(s)) return JSON.stringify(new Date(Date.parse(s) + ((n % 7200) - 3600 || 1) * 1000).toISOString());
  if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(s)) return JSON.stringify(['site-b', 'site-a', `${s}-x`, 'hsm', 'nope'].filter((x) => x !== s)[n % 4]);
  if (s.length >= 8 && s.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(s)) return JSON.stringify(randomBytes(Buffer.from(s, 'base64').length).toString('base64'));
  return JSON.stringify(s.length ? s.slice(0, -1) + String.fromCharCode(s.charCodeAt(s.length - 1) ^ 1) : 'x');
}

const ENUMS = [
  ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'],
  ['AES-128', 'AES-192', 'AES-256'],
  ['sha1', 'sha256'],
  ['imported', 'already_present', 'failed', 'rejected', 'destroyed'],
  ['pkcs11', 'keystore', 'aws-kms', 'azure-kv', 'gcp-kms'],
];

function randomUUIDLike(n: number): string {
  const h = randomBytes(16);
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  if (n % 7 === 0) h.fill(0);
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function applyText(bytes: Buffer, op: TextOp): Buffer {
  const len = bytes.length;
  switch (op.op) {
    case 'flip': {
      if (!len) return bytes;
      const b = Buffer.from(bytes);
      b[op.at % len] ^= op.mask || 1;
      return b;
    }
    case 'truncate':
      return bytes.subarray(0, len ? op.at % len : 0);
    case 'insert': {
      const at = op.at % (len + 1);
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(op.bytes), bytes.subarray(at)]);
    }
    case 'delete': {
      const at = len ? op.at % len : 0;
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + op.len)]);
    }
    case 'affix':
      return Buffer.concat([Buffer.from(PREFIXES[op.prefix % PREFIXES.length], 'utf8'), bytes, Buffer.from(SUFFIXES[op.suffix % SUFFIXES.length], 'utf8')]);
    case 'badUtf8': {
      const at = op.at % (len + 1);
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(BAD_UTF8[op.seq % BAD_UTF8.length]), bytes.subarray(at)]);
    }
    case 'pad': {
      // Whitespace before the last byte: exactly at the size limit (still one message), or one byte over it.
      const target = LIMITS.maxMessageBytes + (op.over ? 1 : 0);
      if (len === 0 || len >= target) return bytes;
      return Buffer.concat([bytes.subarray(0, len - 1), Buffer.alloc(target - len, 0x20), bytes.subarray(len - 1)]);
    }
  }
}

/** The bytes a recipe makes of a signed envelope. */
export function applyRecipe(envelope: SignedEnvelope, recipe: Recipe, ctx: MutationContext = {}): Buffer {
  return mutateJson(envelope, recipe, ctx);
}

/** The bytes a recipe makes of any JSON value (a signature mutation applies where it has a `signature` member). */
export function mutateJson(value: unknown, recipe: Recipe, ctx: MutationContext = {}): Buffer {
  const envelope = value;
  if (recipe.whole) {
    const w = recipe.whole;
    if (w.op === 'bytes') return Buffer.from(w.bytes);
    if (w.op === 'json') return Buffer.from(w.value, 'utf8');
    return Buffer.from(FIXED_WHOLE[w.which % FIXED_WHOLE.length], 'utf8');
  }
  const env = structuredClone(envelope) as { payload: unknown; signature?: Record<string, unknown> };
  if (recipe.sig && env !== null && typeof env === 'object' && !Array.isArray(env)) mutateSignature(env, recipe.sig, ctx);
  const root = toNode(env);
  const typeChoices = [...protocolMessageTypes(), ...FOREIGN_TYPES];
  for (const op of recipe.tree) applyTree(root, op, typeChoices);
  let bytes: Buffer = Buffer.from(render(root), 'utf8');
  for (const op of recipe.text) bytes = applyText(bytes, op);
  return bytes;
}

/* ---------- fast-check arbitraries ---------- */

const n = fc.nat({ max: 1_000_000 });
const rawJson = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? 'null') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'null',
      'true',
      '0',
      '-1',
      '-0',
      '1.5',
      '1e308',
      '9007199254740993',
      '""',
      '"x"',
      '[]',
      '{}',
      '[[]]',
      '{"__proto__":{"polluted":true}}',
      '"__proto__"',
      '"keyhub.v1.key_package"',
      '"site-b"',
      '"00000000-0000-0000-0000-000000000000"',
      '"1970-01-01T00:00:00.000Z"',
      '"9999-12-31T23:59:59.999Z"',
      '"2026-02-30T00:00:00Z"',
      '"ZZZZ"',
      '"AAAA"',
      '"ffffff"',
      '"FFFFFF"',
    ),
  },
);
const fieldName = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('type', 'payload', 'signature', 'extra', 'listenerId', 'sequence', '__proto__', 'constructor', 'prototype', 'batch', 'alg', 'value', ''),
);

export const treeOpArb: fc.Arbitrary<TreeOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('dupKey' as const), obj: n, entry: n, after: fc.boolean(), value: rawJson }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('protoKey' as const), obj: n, key: n, value: n, at: n }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('extraField' as const), obj: n, key: fieldName, value: rawJson }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('dropField' as const), obj: n, entry: n }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('renameKey' as const), obj: n, entry: n, how: fc.constantFrom(...RENAMES) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('replaceLeaf' as const), leaf: n, value: rawJson }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('oversizeString' as const), leaf: n, length: fc.constantFrom(65, 129, 257, 1025, 2049, 8193, 20_000, 70_000) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('oversizeArray' as const), arr: n, count: fc.constantFrom(9, 65, 200, 5_000) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deepNest' as const), leaf: n, depth: fc.constantFrom(2, 64, 1_000, 12_000), open: fc.constantFrom('[' as const, '{' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unicode' as const), leaf: n, trick: n, at: n, replaceAll: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('numberForm' as const), leaf: n, form: n }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('setType' as const), type: n, nested: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('shuffle' as const), obj: n, seed: n }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('escape' as const), leaf: n }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('move' as const), from: n, to: n }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('sameKind' as const), leaf: n, n }) },
);

export const sigOpArb: fc.Arbitrary<SigOp> = fc.record({ op: fc.constant('sig' as const), variant: fc.constantFrom(...SIG_VARIANTS), n });

export const textOpArb: fc.Arbitrary<TextOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at: n, mask: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: n }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('insert' as const), at: n, bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), at: n, len: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('affix' as const), prefix: n, suffix: n }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('badUtf8' as const), at: n, seq: n }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('pad' as const), over: fc.boolean() }) },
);

export const wholeArb: fc.Arbitrary<Whole> = fc.oneof(
  fc.record({ op: fc.constant('bytes' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 64 }) }),
  fc.record({ op: fc.constant('json' as const), value: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null') }),
  fc.record({ op: fc.constant('json' as const), value: fc.string({ maxLength: 64 }) }),
  fc.record({ op: fc.constant('fixed' as const), which: n }),
);

const stacked: fc.Arbitrary<Recipe> = fc
  .record({
    sig: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: sigOpArb }),
    tree: fc.array(treeOpArb, { maxLength: 3 }),
    text: fc.array(textOpArb, { maxLength: 2 }),
  })
  .map((r) => (r.sig ? { sig: r.sig, tree: r.tree, text: r.text } : { tree: r.tree, text: r.text }))
  .filter((r) => r.sig !== undefined || r.tree.length > 0 || r.text.length > 0);

/**
 * A recipe: mostly one mutation (so that many messages still parse and
 * reach the signature check and beyond), sometimes a few stacked, now and
 * then something else entirely.
 */
export const recipeArb: fc.Arbitrary<Recipe> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('sameKind' as const), leaf: n, n }).map((op): Recipe => ({ tree: [op], text: [] })) },
  { weight: 4, arbitrary: treeOpArb.map((op): Recipe => ({ tree: [op], text: [] })) },
  { weight: 2, arbitrary: sigOpArb.map((sig): Recipe => ({ sig, tree: [], text: [] })) },
  { weight: 2, arbitrary: textOpArb.map((op): Recipe => ({ tree: [], text: [op] })) },
  { weight: 3, arbitrary: stacked },
  { weight: 1, arbitrary: wholeArb.map((whole): Recipe => ({ whole, tree: [], text: [] })) },
);
