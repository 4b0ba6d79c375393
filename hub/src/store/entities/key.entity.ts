import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/** A managed key: its name and policy. Material lives in KeyVersion rows. */
@Entity('keys')
export class KeyEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('text', { unique: true }) name!: string;
  @Column('text') algorithm!: string;
  @Column('text', { array: true }) usages!: string[];
  @Column('boolean') exportable!: boolean;
  /** Distribution of a sensitive key falls under the `distribution.sensitive` approval policy. */
  @Column('boolean') sensitive!: boolean;
  /** Kinds of target the key may reach (issue 12); row-MAC bound when not the default (crypto/row-mac.ts). */
  @Column('text', { name: 'target_kinds', array: true, default: () => `'{pkcs11}'` }) targetKinds!: string[];
  /** A cloud JWK import (the key in clear inside TLS) is allowed; row-MAC bound when true. */
  @Column('boolean', { name: 'allow_clear_import', default: false }) allowClearImport!: boolean;
  /** NIST SP 800-57 state of the key as a whole. */
  @Column('text') state!: string;
  @Column('int', { name: 'current_version' }) currentVersion!: number;
  @Column('text', { name: 'created_by' }) createdBy!: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
