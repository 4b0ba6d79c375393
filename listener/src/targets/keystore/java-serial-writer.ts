import type { ClearBytes } from './clear-bytes';

/**
 * The two Java-serialized objects a JCEKS secret-key entry needs, written the
 * way ObjectOutputStream writes them (Java Object Serialization Specification,
 * ch. 6), for exactly these classes. The field lists, their order (sorted by
 * name, objects after primitives) and the serialVersionUIDs are those of
 * OpenJDK 17 and were compared with a keystore Java wrote.
 */
const MAGIC = Buffer.from('aced0005', 'hex');
const TC_NULL = 0x70;
const TC_REFERENCE = 0x71;
const TC_CLASSDESC = 0x72;
const TC_OBJECT = 0x73;
const TC_STRING = 0x74;
const TC_ARRAY = 0x75;
const TC_ENDBLOCKDATA = 0x78;
const SC_SERIALIZABLE = 0x02;
const BASE_HANDLE = 0x7e0000;

const SUID = {
  sealedObjectForKeyProtector: 'cd57ca59e730bb53',
  sealedObject: '3e363da6c3b75470',
  secretKeySpec: '5b470b66e230614d',
  byteArray: 'acf317f8060854e0',
} as const;

const u8 = (n: number): Buffer => Buffer.from([n]);
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
/** DataOutput.writeUTF for ASCII text (modified UTF-8 equals ASCII there). */
const utf = (text: string): Buffer => Buffer.concat([u16(text.length), Buffer.from(text, 'ascii')]);
const ref = (handle: number): Buffer => Buffer.concat([u8(TC_REFERENCE), u32(BASE_HANDLE + handle)]);
const str = (text: string): Buffer => Buffer.concat([u8(TC_STRING), utf(text)]);
const classDesc = (name: string, suid: string, fieldCount: number): Buffer => Buffer.concat([u8(TC_CLASSDESC), utf(name), Buffer.from(suid, 'hex'), u8(SC_SERIALIZABLE), u16(fieldCount)]);
const field = (code: string, name: string, type: Buffer): Buffer => Buffer.concat([Buffer.from(code, 'ascii'), utf(name), type]);
const byteArrayDesc = (): Buffer => Buffer.concat([classDesc('[B', SUID.byteArray, 0), u8(TC_ENDBLOCKDATA), u8(TC_NULL)]);
const byteArrayBody = (bytes: Buffer): Buffer[] => [u32(bytes.length), bytes];

/**
 * javax.crypto.spec.SecretKeySpec { String algorithm; byte[] key }, the object
 * KeyProtector.seal serializes (and the only key class jceks.key.serialFilter
 * admits besides KeyRep). Every piece holding the key is held for wiping.
 */
export function serializeSecretKeySpec(algorithm: string, key: Buffer, clear: ClearBytes): Buffer {
  const head = Buffer.concat([
    MAGIC,
    u8(TC_OBJECT),
    classDesc('javax.crypto.spec.SecretKeySpec', SUID.secretKeySpec, 2), // handle 0
    field('L', 'algorithm', str('Ljava/lang/String;')), // handle 1
    field('[', 'key', str('[B')), // handle 2
    u8(TC_ENDBLOCKDATA),
    u8(TC_NULL),
    // object: handle 3
    str(algorithm), // handle 4
    u8(TC_ARRAY),
    byteArrayDesc(), // handle 5, array handle 6
  ]);
  return clear.hold(Buffer.concat([head, ...byteArrayBody(key)]));
}

/**
 * com.sun.crypto.provider.SealedObjectForKeyProtector, a javax.crypto.SealedObject
 * { byte[] encodedParams; byte[] encryptedContent; String paramsAlg; String sealAlg },
 * with its own stream header (JceKeyStore opens a new ObjectOutputStream per entry).
 */
export function serializeSealedObject(encodedParams: Buffer, encryptedContent: Buffer, sealAlg: string): Buffer {
  return Buffer.concat([
    MAGIC,
    u8(TC_OBJECT),
    classDesc('com.sun.crypto.provider.SealedObjectForKeyProtector', SUID.sealedObjectForKeyProtector, 0), // handle 0
    u8(TC_ENDBLOCKDATA),
    classDesc('javax.crypto.SealedObject', SUID.sealedObject, 4), // handle 1
    field('[', 'encodedParams', str('[B')), // handle 2
    field('[', 'encryptedContent', ref(2)),
    field('L', 'paramsAlg', str('Ljava/lang/String;')), // handle 3
    field('L', 'sealAlg', ref(3)),
    u8(TC_ENDBLOCKDATA),
    u8(TC_NULL),
    // object: handle 4; superclass fields first, in declared (sorted) order
    u8(TC_ARRAY),
    byteArrayDesc(), // handle 5, array handle 6
    ...byteArrayBody(encodedParams),
    u8(TC_ARRAY),
    ref(5), // array handle 7
    ...byteArrayBody(encryptedContent),
    str(sealAlg), // paramsAlg, handle 8
    str(sealAlg), // sealAlg, handle 9
  ]);
}
