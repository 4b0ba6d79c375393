import { Column, Entity, PrimaryColumn } from 'typeorm';

/** The hub's signing public key, recorded at init so offline verifiers need no HSM. */
@Entity('hub_identity')
export class HubIdentityEntity {
  @PrimaryColumn('int') id!: number;
  @Column('bytea', { name: 'signing_key' }) signingKey!: Buffer;
  @Column('text') fingerprint!: string;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
}
