import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { DistributionState } from '../../domain/distribution-state';

/** The states and which may follow which: domain/distribution-state.ts. */
export type { DistributionState };

@Entity('distributions')
@Index(['keyVersionId', 'listenerId', 'target'], { unique: true })
export class DistributionEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('uuid', { name: 'key_version_id' }) keyVersionId!: string;
  @Column('text', { name: 'listener_id' }) listenerId!: string;
  @Column('text') target!: string;
  @Column('text') state!: DistributionState;
  @Column('int') attempts!: number;
  @Column('uuid', { name: 'last_package_id', nullable: true }) lastPackageId!: string | null;
  @Column('timestamptz', { name: 'last_sent_at', nullable: true }) lastSentAt!: Date | null;
  @Column('text', { name: 'target_kcv', nullable: true }) targetKcv!: string | null;
  @Column('text', { name: 'error_code', nullable: true }) errorCode!: string | null;
  @Column('text', { name: 'error_detail', nullable: true }) errorDetail!: string | null;
  @Column('text', { name: 'created_by' }) createdBy!: string;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
  @Column('timestamptz', { name: 'updated_at' }) updatedAt!: Date;
  @Column('timestamptz', { name: 'confirmed_at', nullable: true }) confirmedAt!: Date | null;
}
