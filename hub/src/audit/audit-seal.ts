import type { DataSource, EntityManager } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { auditSealsInUse } from '../store/queries/audit';
import type { Queryable } from '../store/queries/queryable';

/*
 * The seal: an HMAC-SHA256 computed in the hub HSM (the row-MAC key, which
 * never leaves it) over (seq, hash) of the last event of every append. The
 * hash chain makes that one tag vouch for every event before it, so someone
 * who can write the database but not use the HSM cannot rewrite an event
 * after the last checkpoint and re-chain the hashes: the head's seal no
 * longer verifies. The hub checks the head's seal before it chains a new
 * event onto it (so it never seals a forged head by appending to it) and
 * before it signs a checkpoint.
 */

/** Length-prefixed like the row MACs (crypto/row-mac.ts), under a tag of its own, so no row encodes like a seal. */
const TAG = 'keyhub.audit-seal.v1';

export function auditSealData(seq: number, hash: string): Buffer {
  const parts: Buffer[] = [];
  for (const f of [TAG, 'audit_event', String(seq), hash]) {
    const bytes = Buffer.from(f, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

/** What the sealer needs of the hub keyring. */
export interface RowMacKey {
  macRow(data: Buffer): Promise<Buffer>;
  verifyRow(data: Buffer, tag: Buffer): Promise<boolean>;
}

export interface AuditHead {
  seq: string | number;
  hash: string;
  seal: Buffer | null;
}

/**
 * Seals heads and checks them. Remembers the last head it sealed or
 * verified: a head with that seq and hash is the one it vouched for (a
 * rewrite changes the hash), so the usual append, on this process's own
 * last head, costs one HSM call, not two.
 */
export class AuditSealer {
  private known?: string;
  private loaded?: Promise<RowMacKey>;

  constructor(private readonly load: () => Promise<RowMacKey>) {}

  /** The key on first use (before `init` made it, loading fails and is tried again next time). */
  private key(): Promise<RowMacKey> {
    this.loaded ??= this.load().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  async seal(seq: number, hash: string): Promise<Buffer> {
    const tag = await (await this.key()).macRow(auditSealData(seq, hash));
    this.known = `${seq}:${hash}`;
    return tag;
  }

  /**
   * AUDIT_CHAIN_BROKEN unless the head was written by this hub: its seal
   * verifies in the HSM. A head without a seal is accepted only in a
   * database that has never held one (events written before seals existed)
   * and has no chained checkpoint; stripping every seal and checkpoint to
   * get there is caught by the sites' checkpoint copies.
   */
  async assertHead(m: Queryable, head: AuditHead): Promise<void> {
    const seq = Number(head.seq);
    if (this.known === `${seq}:${head.hash}`) return;
    if (!head.seal) {
      if (await auditSealsInUse(m)) throw sealBroken(seq, `event ${seq}, the head of the chain, carries no seal: the hub did not write it`);
      return;
    }
    if (!(await (await this.key()).verifyRow(auditSealData(seq, head.hash), head.seal)))
      throw sealBroken(seq, `the seal of event ${seq}, the head of the chain, does not verify: the hub did not write it`);
    this.known = `${seq}:${head.hash}`;
  }
}

export function sealBroken(seq: number, reason: string): KeyhubError {
  return new KeyhubError('AUDIT_CHAIN_BROKEN', `audit chain broken at event ${seq}: ${reason}`, { details: { seq, reason } });
}

/**
 * Sealers by data source. The composition root registers one for the data
 * source it opens (`sealAuditWith`), and every append on it is checked and
 * sealed. Keyed by data source rather than global, so that two runtimes in
 * one process (tests) each seal with their own HSM.
 */
const sealers = new WeakMap<DataSource, AuditSealer>();

export function sealAuditWith(ds: DataSource, load: () => Promise<RowMacKey>): AuditSealer {
  const sealer = new AuditSealer(load);
  sealers.set(ds, sealer);
  return sealer;
}

export function sealerFor(m: EntityManager | DataSource): AuditSealer | undefined {
  return sealers.get('connection' in m ? m.connection : m);
}
