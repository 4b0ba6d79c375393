import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** retired: superseded by a rotation (the site may still hold it for packages in flight); compromised: never used again, its blob wiped. */
export type KekState = 'pending_confirmation' | 'active' | 'retired' | 'revoked' | 'compromised';

/** A listener's root KEK, stored wrapped under the Hub Master Key. */
@Entity('keks')
@Index(['listenerId', 'version'], { unique: true })
export class KekEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('text', { name: 'listener_id' }) listenerId!: string;
  @Column('int') version!: number;
  @Column('bytea') wrapped!: Buffer;
  @Column('text') kcv!: string;
  /** HMAC-SHA256 from the hub HSM over what this row is (crypto/row-mac.ts); NULL only before its one-time backfill. */
  @Column('bytea', { nullable: true }) mac!: Buffer | null;
  @Column('text') state!: KekState;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @Column('timestamptz', { name: 'activated_at', nullable: true }) activatedAt!: Date | null;
}
