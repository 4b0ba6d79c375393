import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** One version of a key, stored only wrapped under the Hub Master Key (AES-KWP). */
@Entity('key_versions')
@Index(['keyId', 'version'], { unique: true })
export class KeyVersionEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('uuid', { name: 'key_id' }) keyId!: string;
  @Column('int') version!: number;
  @Column('bytea') wrapped!: Buffer;
  @Column('int') length!: number;
  @Column('text') kcv!: string;
  /** HMAC-SHA256 from the hub HSM over what this row is (crypto/row-mac.ts); NULL only before its one-time backfill. */
  @Column('bytea', { nullable: true }) mac!: Buffer | null;
  /** A key pair's public key, DER SubjectPublicKeyInfo (the blob holds the private key); NULL for secret keys. */
  @Column('bytea', { name: 'public_key', nullable: true }) publicKey!: Buffer | null;
  @Column('text') state!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
