import { DataSource } from 'typeorm';
import { KeyhubError } from '@keyhub/shared';
import { ENTITIES } from './entities';
import { Initial1732300000000 } from './migrations/1732300000000-initial';
import { LeanWriteIndexes1732500000000 } from './migrations/1732500000000-lean-write-indexes';
import { ListenerSequences1732600000000 } from './migrations/1732600000000-listener-sequences';
import { HotSentUpdates1732700000000 } from './migrations/1732700000000-hot-sent-updates';
import { QueryIndexes1732400000000 } from './migrations/1732400000000-query-indexes';
import { OperatorsAndApprovals1732800000000 } from './migrations/1732800000000-operators-and-approvals';
import { RowMacs1732900000000 } from './migrations/1732900000000-row-macs';
import { CheckpointChain1733000000000 } from './migrations/1733000000000-checkpoint-chain';
import { ReceiptBinding1733200000000 } from './migrations/1733200000000-receipt-binding';
import { ListenerRegistrations1733100000000 } from './migrations/1733100000000-listener-registrations';
import { KeyLifecycle1733300000000 } from './migrations/1733300000000-key-lifecycle';
import { KeyCommands1733400000000 } from './migrations/1733400000000-key-commands';
import { DistributionPolicies1733500000000 } from './migrations/1733500000000-distribution-policies';
import { SiteLifecycle1733600000000 } from './migrations/1733600000000-site-lifecycle';
import { KeyPairPublicKeys1733610000000 } from './migrations/1733610000000-key-pair-public-keys';
import { DashboardSessions1733700000000 } from './migrations/1733700000000-dashboard-sessions';
import { TargetKeks1733800000000 } from './migrations/1733800000000-target-keks';
import { TargetPolicies1733900000000 } from './migrations/1733900000000-target-policies';
import { ReportIndexes1733950000000 } from './migrations/1733950000000-report-indexes';
import { RootKekCeremonies1733960000000 } from './migrations/1733960000000-root-kek-ceremonies';
import { KeyVersionCertificates1733970000000 } from './migrations/1733970000000-key-version-certificates';
import { TargetKekRotation1733980000000 } from './migrations/1733980000000-target-kek-rotation';
import { TargetKindsCloudReceipts1733990000000 } from './migrations/1733990000000-target-kinds-cloud-receipts';

export const MIGRATIONS = [
  Initial1732300000000,
  QueryIndexes1732400000000,
  LeanWriteIndexes1732500000000,
  ListenerSequences1732600000000,
  HotSentUpdates1732700000000,
  OperatorsAndApprovals1732800000000,
  RowMacs1732900000000,
  CheckpointChain1733000000000,
  ListenerRegistrations1733100000000,
  ReceiptBinding1733200000000,
  KeyLifecycle1733300000000,
  KeyCommands1733400000000,
  DistributionPolicies1733500000000,
  SiteLifecycle1733600000000,
  KeyPairPublicKeys1733610000000,
  DashboardSessions1733700000000,
  TargetKeks1733800000000,
  TargetPolicies1733900000000,
  ReportIndexes1733950000000,
  RootKekCeremonies1733960000000,
  KeyVersionCertificates1733970000000,
  TargetKekRotation1733980000000,
  TargetKindsCloudReceipts1733990000000,
];

export function createDataSource(url: string, poolSize = 10): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'keyhub_migrations',
    synchronize: false,
    logging: false,
    extra: { max: poolSize, connectionTimeoutMillis: 10_000, application_name: 'keyhub-hub' },
  });
}

export async function connectDataSource(url: string, poolSize?: number): Promise<DataSource> {
  const ds = createDataSource(url, poolSize);
  try {
    await ds.initialize();
  } catch (err) {
    throw new KeyhubError('DB_UNAVAILABLE', `cannot connect to PostgreSQL (${redactUrl(url)})`, { cause: err });
  }
  return ds;
}

/** Database URLs may carry passwords; errors and logs show them without. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
