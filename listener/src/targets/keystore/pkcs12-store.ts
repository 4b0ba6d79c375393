import { mapConcurrent } from '@keyhub/shared';
import type { ClearBytes } from './clear-bytes';
import type { FormatSettings, KeystoreFormat } from './keystore-format';
import type { KeystoreEntryInfo, KeystoreEntryInput } from './keystore-types';
import { certBag, parseBag, secretBag, shroudedKeyBag, type Pkcs12Bag } from './pkcs12-bags';
import { parsePkcs12, serializePkcs12, type Pkcs12Content } from './pkcs12-file';
import { newMacKey, type Pkcs12MacKey } from './pkcs12-mac';
import { encryptPkcs8, secretKeyInfo } from './pkcs12-protect';
import { readTlv } from './der';

const PROTECT_CONCURRENCY = 4;
const asBag = (der: Buffer): Pkcs12Bag => parseBag(der, readTlv(der, 0));

/** PKCS#12 as Java 17 reads it: entries are named key bags (private or secret) and named certificates. */
export class Pkcs12Store implements KeystoreFormat {
  private constructor(
    private readonly contents: readonly Pkcs12Content[],
    private readonly settings: FormatSettings,
    /** The MAC key of this writer, derived at its first rewrite and shared by the stores that follow (pkcs12-mac.ts, newMacKey). */
    private readonly mac: { key?: Pkcs12MacKey } = {},
  ) {}

  static empty(settings: FormatSettings): Pkcs12Store {
    return new Pkcs12Store([], settings);
  }

  static parse(file: Buffer, settings: FormatSettings): Pkcs12Store {
    return new Pkcs12Store(parsePkcs12(file, settings.password), settings);
  }

  private bags(): Pkcs12Bag[] {
    return this.contents.flatMap((c) => (c.kind === 'plain' ? c.bags : []));
  }

  list(): KeystoreEntryInfo[] {
    return this.bags().flatMap((b) => (b.alias !== undefined && b.kind !== 'chainCertificate' && b.kind !== 'other' ? [{ alias: b.alias, kind: b.kind }] : []));
  }

  async withChanges(added: readonly KeystoreEntryInput[], removed: ReadonlySet<string>, clear: ClearBytes): Promise<Pkcs12Store> {
    const drop = new Set([...removed, ...added.map((e) => e.alias)]);
    const droppedKeyIds = new Set(this.bags().flatMap((b) => (b.alias !== undefined && drop.has(b.alias) && b.localKeyId !== undefined ? [b.localKeyId] : [])));
    // A key's certificates go with it; issuer certificates (no name, no key id) stay, shared by other chains.
    const keep = (b: Pkcs12Bag): boolean => !(b.alias !== undefined && drop.has(b.alias)) && !(b.localKeyId !== undefined && droppedKeyIds.has(b.localKeyId));
    const contents: Pkcs12Content[] = this.contents.map((c) => (c.kind === 'plain' ? { kind: 'plain', bags: c.bags.filter(keep) } : c));
    const present = new Set(contents.flatMap((c) => (c.kind === 'plain' ? c.bags.map((b) => b.der.toString('hex')) : [])));
    const fresh: Pkcs12Bag[] = [];
    // PBKDF2 runs in libuv's pool: a few entries at a time use every core on a backlog.
    for (const bags of await mapConcurrent(added, PROTECT_CONCURRENCY, (entry) => this.protect(entry, clear))) {
      for (const der of bags) {
        const key = der.toString('hex');
        if (!present.has(key)) fresh.push(asBag(der));
        present.add(key);
      }
    }
    return new Pkcs12Store([...contents, { kind: 'plain', bags: fresh }], this.settings, this.mac);
  }

  private async protect(entry: KeystoreEntryInput, clear: ClearBytes): Promise<Buffer[]> {
    const { password, pkcs12KeyIterations: iterations } = this.settings;
    if (entry.kind === 'secretKey') return [secretBag(entry.alias, await encryptPkcs8(secretKeyInfo(entry.algorithm, entry.key, clear), password, iterations, clear))];
    const [leaf, ...issuers] = entry.chain;
    return [shroudedKeyBag(entry.alias, await encryptPkcs8(entry.pkcs8, password, iterations, clear)), certBag(leaf, entry.alias), ...issuers.map((cert) => certBag(cert))];
  }

  serialize(): Buffer {
    this.mac.key ??= newMacKey(this.settings.password, this.settings.pkcs12MacIterations);
    return serializePkcs12(this.contents, this.settings.password, this.settings.pkcs12MacIterations, this.mac.key);
  }
}
