import { Column, Entity, PrimaryColumn } from 'typeorm';

/** rekey_required: its root KEK was compromised, it must enroll again; decommissioning: destroys sent, identity not yet revoked. */
export type ListenerState = 'pending_approval' | 'approved' | 'active' | 'revoked' | 'rekey_required' | 'decommissioning' | 'decommissioned';

export interface ListenerTarget {
  name: string;
  kind: string;
}

@Entity('listeners')
export class ListenerEntity {
  @PrimaryColumn('text') id!: string;
  @Column('text') state!: ListenerState;
  @Column('bytea', { name: 'identity_key' }) identityKey!: Buffer;
  @Column('bytea', { name: 'transport_key' }) transportKey!: Buffer;
  @Column('text', { name: 'oaep_hash' }) oaepHash!: string;
  @Column('text') fingerprint!: string;
  @Column('jsonb') targets!: ListenerTarget[];
  @Column('text', { nullable: true }) hostname!: string | null;
  @Column('timestamptz', { name: 'requested_at' }) requestedAt!: Date;
  @Column('timestamptz', { name: 'approved_at', nullable: true }) approvedAt!: Date | null;
  @Column('text', { name: 'approved_by', nullable: true }) approvedBy!: string | null;
  @Column('timestamptz', { name: 'activated_at', nullable: true }) activatedAt!: Date | null;
  @Column('timestamptz', { name: 'last_seen_at', nullable: true }) lastSeenAt!: Date | null;
  /** Per-target health of the last heartbeat (issue 12), written with `last_seen_at`. */
  @Column('jsonb', { name: 'target_health', nullable: true }) targetHealth!: Array<{ name: string; healthy: boolean; detail?: string }> | null;
}
