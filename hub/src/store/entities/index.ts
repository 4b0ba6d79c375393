import { AuditCheckpointEntity, AuditEventEntity } from './audit-event.entity';
import { DistributionEntity } from './distribution.entity';
import { HubIdentityEntity } from './hub-identity.entity';
import { KekEntity } from './kek.entity';
import { KeyVersionEntity } from './key-version.entity';
import { KeyEntity } from './key.entity';
import { ListenerEntity } from './listener.entity';
import { OutboxEntity } from './outbox.entity';
import { PackageEntity } from './package.entity';

export * from './audit-event.entity';
export * from './distribution.entity';
export * from './hub-identity.entity';
export * from './kek.entity';
export * from './key-version.entity';
export * from './key.entity';
export * from './listener.entity';
export * from './outbox.entity';
export * from './package.entity';

export const ENTITIES = [KeyEntity, KeyVersionEntity, ListenerEntity, KekEntity, DistributionEntity, PackageEntity, OutboxEntity, AuditEventEntity, AuditCheckpointEntity, HubIdentityEntity];
