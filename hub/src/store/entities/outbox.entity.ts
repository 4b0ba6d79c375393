import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * Messages committed together with the state change that caused them and
 * published afterwards by the relay (transactional outbox): PostgreSQL, not
 * JetStream, is the source of truth.
 */
@Entity('outbox')
export class OutboxEntity {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' }) id!: string;
  @Column('text') subject!: string;
  @Column('text', { name: 'msg_id' }) msgId!: string;
  @Column('bytea') payload!: Buffer;
  @Column('uuid', { name: 'distribution_id', nullable: true }) distributionId!: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
}
