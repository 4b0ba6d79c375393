import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { nkeys } from 'nats';
import { AUDIT_CHECKPOINT_TYPE, MESSAGE_TYPES, messageSchema, NATS_CREDENTIALS_TYPE, type MessageOf, type MessageType } from '@keyhub/protocol';

/**
 * One generator of a schema-valid payload per message type of the protocol.
 * Typed as a record over `MessageType` (the `type` of every member of
 * `messageSchema`), so a message type added to the protocol does not compile
 * here until it has a generator; registry.test.ts checks the same at run
 * time against `messageSchema` and `MESSAGE_TYPES`, and every fuzz target
 * declares what it does with each type in a table of the same shape.
 */
export interface PayloadContext {
  listenerId: string;
  now: Date;
  /** A fresh sequence number (packages, heartbeats). */
  sequence: number;
}

const SPKI_EC = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const SPKI_RSA = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
/** Too weak for a transport key: the hub refuses a target KEK request carrying it. */
const SPKI_RSA_1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const b64url = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

export const PAYLOADS: { [T in MessageType]: (c: PayloadContext) => MessageOf<T> } = {
  [MESSAGE_TYPES.targetKekRequest]: (c) => ({
    type: MESSAGE_TYPES.targetKekRequest,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    target: 'hsm',
    kind: 'pkcs11',
    transportKey: SPKI_RSA_1024,
    oaepHash: 'sha1',
  }),
  [MESSAGE_TYPES.targetKek]: (c) => ({
    type: MESSAGE_TYPES.targetKek,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    target: 'hsm',
    transportFingerprint: (hex(32).match(/.{4}/g) ?? []).join('-'),
    kek: { id: randomUUID(), version: 1, kcv: hex(3), mechanism: 'RSA-OAEP', oaepHash: 'sha1', blob: randomBytes(256).toString('base64') },
  }),
  [MESSAGE_TYPES.targetKekConfirm]: (c) => ({
    type: MESSAGE_TYPES.targetKekConfirm,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    target: 'hsm',
    kekId: randomUUID(),
    kekVersion: 1,
    kcv: hex(3),
  }),
  [MESSAGE_TYPES.targetKekRotation]: (c) => ({
    type: MESSAGE_TYPES.targetKekRotation,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    target: 'hsm',
    wrappedUnder: { id: randomUUID(), version: 1 },
    kek: { id: randomUUID(), version: 2, kcv: hex(3), mechanism: 'AES-KWP', blob: randomBytes(40).toString('base64') },
    retire: [],
  }),
  [MESSAGE_TYPES.targetUpdate]: (c) => ({
    type: MESSAGE_TYPES.targetUpdate,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    op: 'remove',
    target: 'no-such-target',
    kind: 'keystore',
    settings: { path: '/var/lib/keys/app.p12', type: 'PKCS12' },
  }),
  [MESSAGE_TYPES.enrollmentRequest]: (c) => ({
    type: MESSAGE_TYPES.enrollmentRequest,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    identityKey: SPKI_EC,
    transportKey: SPKI_RSA,
    oaepHash: 'sha1',
    targets: [{ name: 'hsm', kind: 'pkcs11' }],
    hostname: 'site.example',
    natsUserKey: nkeys.createUser().getPublicKey(),
  }),
  [MESSAGE_TYPES.rootKek]: (c) => ({
    type: MESSAGE_TYPES.rootKek,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    hubKey: SPKI_EC,
    kek: { id: randomUUID(), version: 1, kcv: hex(3), mechanism: 'RSA-OAEP', oaepHash: 'sha1', blob: randomBytes(256).toString('base64') },
  }),
  [MESSAGE_TYPES.rootKekCeremony]: (c) => ({
    type: MESSAGE_TYPES.rootKekCeremony,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    hubKey: SPKI_EC,
    ceremonyId: randomUUID(),
    kek: { id: randomUUID(), version: 1, kcv: hex(3) },
    scheme: 'xor',
    threshold: 3,
    parts: [1, 2, 3].map((index) => ({ index, kcv: hex(3), custodian: `custodian-${index}` })),
  }),
  [MESSAGE_TYPES.rootKekConfirm]: (c) => ({
    type: MESSAGE_TYPES.rootKekConfirm,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    kekId: randomUUID(),
    kekVersion: 1,
    kcv: hex(3),
  }),
  [MESSAGE_TYPES.rootKekRotation]: (c) => ({
    type: MESSAGE_TYPES.rootKekRotation,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    wrappedUnder: { id: randomUUID(), version: 1 },
    kek: { id: randomUUID(), version: 2, kcv: hex(3), mechanism: 'AES-KWP', blob: randomBytes(40).toString('base64') },
  }),
  [MESSAGE_TYPES.keyPackage]: (c) => ({
    type: MESSAGE_TYPES.keyPackage,
    id: randomUUID(),
    listenerId: c.listenerId,
    target: 'hsm',
    distributionId: randomUUID(),
    sequence: c.sequence,
    issuedAt: c.now.toISOString(),
    expiresAt: new Date(c.now.getTime() + 3_600_000).toISOString(),
    key: { id: randomUUID(), name: 'fuzz-key', version: 1, algorithm: 'AES-256', length: 32, usages: ['encrypt', 'decrypt'], exportable: false, kcv: hex(3) },
    wrapping: { kekId: randomUUID(), kekVersion: 1, mechanism: 'AES-KWP', blob: randomBytes(40).toString('base64') },
  }),
  [MESSAGE_TYPES.receipt]: (c) => ({
    type: MESSAGE_TYPES.receipt,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    packageId: randomUUID(),
    packageSha256: hex(32),
    target: 'hsm',
    outcome: 'imported',
    kcv: hex(3),
  }),
  [MESSAGE_TYPES.heartbeat]: (c) => ({
    type: MESSAGE_TYPES.heartbeat,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    sequence: c.sequence,
    targets: [{ name: 'hsm', healthy: true }],
  }),
  [AUDIT_CHECKPOINT_TYPE]: (c) => ({
    type: AUDIT_CHECKPOINT_TYPE,
    seq: c.sequence,
    hash: hex(32),
    at: c.now.toISOString(),
    prevSeq: c.sequence - 1,
    prevDigest: createHash('sha256').update(String(c.sequence)).digest('hex'),
  }),
  [NATS_CREDENTIALS_TYPE]: (c) => {
    const userKey = nkeys.createUser().getPublicKey();
    return {
      type: NATS_CREDENTIALS_TYPE,
      id: randomUUID(),
      listenerId: c.listenerId,
      issuedAt: c.now.toISOString(),
      hubKey: SPKI_EC,
      userKey,
      userJwt: `${b64url({ typ: 'JWT', alg: 'ed25519-nkey' })}.${b64url({ sub: userKey, nats: { type: 'user' } })}.${randomBytes(64).toString('base64url')}`,
    };
  },
  [MESSAGE_TYPES.keyCommand]: (c) => ({
    type: MESSAGE_TYPES.keyCommand,
    id: randomUUID(),
    listenerId: c.listenerId,
    target: 'hsm',
    issuedAt: c.now.toISOString(),
    action: 'compromise',
    reason: 'operator',
    key: { id: randomUUID(), name: 'fuzz-key', version: 1, kcv: hex(3), usages: ['encrypt', 'decrypt'] },
  }),
  [MESSAGE_TYPES.inventory]: (c) => ({
    type: MESSAGE_TYPES.inventory,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    reportId: randomUUID(),
    // Two days old: past the hub's freshness window (hub/src/operations/inventory/record-inventory.ts).
    takenAt: new Date(c.now.getTime() - 2 * 86_400_000).toISOString(),
    part: 1,
    of: 1,
    targets: ['hsm'],
    items: [
      { target: 'hsm', objectId: hex(20), keyId: randomUUID(), version: 1, label: 'fuzz-key.v1', kcv: hex(3), state: 'active' },
      { target: 'hsm', objectId: hex(8), label: 'planted', state: 'disabled' },
    ],
  }),
  [MESSAGE_TYPES.commandReceipt]: (c) => ({
    type: MESSAGE_TYPES.commandReceipt,
    id: randomUUID(),
    listenerId: c.listenerId,
    issuedAt: c.now.toISOString(),
    commandId: randomUUID(),
    commandSha256: hex(32),
    target: 'hsm',
    action: 'compromise',
    outcome: 'done',
    effect: 'usages_off',
  }),
};

/** Every message type the protocol knows: the members of `messageSchema` and the values of `MESSAGE_TYPES`. */
export function protocolMessageTypes(): MessageType[] {
  const fromUnion = messageSchema.options.map((o) => o.shape.type.value);
  return [...new Set<MessageType>([...fromUnion, ...(Object.values(MESSAGE_TYPES) as MessageType[])])].sort();
}

/** A payload of `type`, from its generator. */
export function payloadOf<T extends MessageType>(type: T, c: PayloadContext): MessageOf<T> {
  const make = PAYLOADS[type] as ((c: PayloadContext) => MessageOf<T>) | undefined;
  if (!make) throw new Error(`no fuzz generator for message type ${type}: add one to test/src/fuzz/lib/messages.ts`);
  return make(c);
}

/** Types that are not ours, or not of this version: what a wrong-`type` mutation puts in. */
export const FOREIGN_TYPES = [
  '',
  'keyhub.v1.signed_batch',
  'keyhub.v2.key_package',
  'keyhub.v1.KEY_PACKAGE',
  'keyhub.v1.key_package ',
  'keyhub.v1.key_package\u0000',
  'keyhub.v1.kеy_package', // Cyrillic е
  'keyhub.v1.receipt\u200b',
  'keyhub.v0.heartbeat',
  'keyhub.v1.enrollment',
  'keyhub.v1.audit_event',
  'keyhub.v1.checkpoint',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'x'.repeat(65),
];
