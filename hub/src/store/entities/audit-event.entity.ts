import { Column, Entity, PrimaryColumn } from 'typeorm';

const bigintNumber = { to: (v: number) => v, from: (v: string) => Number(v) };

/** Append-only, hash-chained: hash = SHA-256(prevHash || JCS(event)). */
@Entity('audit_events')
export class AuditEventEntity {
  @PrimaryColumn('bigint', { transformer: bigintNumber }) seq!: number;
  @Column('timestamptz') at!: Date;
  @Column('text') actor!: string;
  @Column('text') action!: string;
  @Column('text') subject!: string;
  @Column('jsonb') details!: Record<string, string | number | boolean | null>;
  @Column('text', { name: 'prev_hash' }) prevHash!: string;
  @Column('text') hash!: string;
}

/** A signature by the hub signing key (in the HSM) over the chain head at `seq`. */
@Entity('audit_checkpoints')
export class AuditCheckpointEntity {
  @PrimaryColumn('bigint', { transformer: bigintNumber }) seq!: number;
  @Column('text') hash!: string;
  @Column('timestamptz') at!: Date;
  @Column('text') signature!: string;
}
