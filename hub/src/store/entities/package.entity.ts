import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Every key package ever issued: lets a receipt be traced to its distribution. */
@Entity('packages')
export class PackageEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('uuid', { name: 'distribution_id' }) distributionId!: string;
  @Column('text', { name: 'listener_id' }) listenerId!: string;
  @Column('bigint', { transformer: { to: (v: number) => v, from: (v: string) => Number(v) } }) sequence!: number;
  @Column('timestamptz', { name: 'issued_at' }) issuedAt!: Date;
  @Column('timestamptz', { name: 'expires_at' }) expiresAt!: Date;
}
