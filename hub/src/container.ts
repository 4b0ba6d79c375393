import 'reflect-metadata';
import { container as root, type DependencyContainer } from 'tsyringe';
import type { DataSource } from 'typeorm';
import { createLogger, createMetricsRegistry, InstrumentedHsm, Pkcs11Hsm, type Hsm, type Logger, type Registry } from '@keyhub/shared';
import type { HubConfig } from './config';
import { sealAuditWith } from './audit/audit-seal';
import { HubKeyring } from './crypto/hub-keyring';
import { signKeyCommandsWith } from './operations/commands/command-signer';
import { connectDataSource } from './store/data-source';
import { TOKENS } from './tokens';
import type { api } from '@keyhub/protocol';
import type { HubCa } from './crypto/ca';
import { HUB_CA_PEMS } from './http/tls-material';
import { APPROVED_ACTION_RUNNERS, type ApprovedActionRunner, type ApprovedActionRunners } from './operations/approvals/approved-action';
import { UpdatePolicy } from './operations/approvals/policies';
import { ChangeKeyState } from './operations/keys/change-key-state';
import { RequestDistribution } from './operations/distributions/request-distribution';
import { RequestListenerApproval } from './operations/listeners/request-listener-approval';
import { DecommissionListener } from './operations/listeners/decommission-listener';
import { OperatorChanges } from './operations/operators/operator-changes';
import { ApprovePlacement } from './operations/placements/approve-placement';
import { RequestTargetKekApproval } from './operations/targets/request-target-kek-approval';
import { RequestTargetUpdateApproval } from './operations/targets/request-target-update-approval';
import { ChangeTargetPolicy } from './operations/keys/change-target-policy';
import { RequestRootKekCeremony } from './operations/listeners/request-root-kek-ceremony';

export interface HubRuntime {
  container: DependencyContainer;
  hsm: Hsm;
  ds: DataSource;
  logger: Logger;
  /** Metrics of this process; `keyhub serve` exposes them, one-shot commands simply drop them. */
  registry: Registry;
  close(): Promise<void>;
}

/**
 * The hub's composition root: opens the HSM and the database, registers them,
 * and (unless initializing) loads the hub keyring. Nothing registers itself
 * on import; everything the process uses is wired here.
 */
export async function openHubRuntime(config: HubConfig, options: { requireKeyring?: boolean; logger?: Logger; databaseRole?: 'service' | 'owner' } = {}): Promise<HubRuntime> {
  const logger = options.logger ?? createLogger('keyhub-hub');
  const registry = createMetricsRegistry();
  // Wrapped here, at the root, so every HSM call anywhere in the hub is timed without the callers knowing.
  const hsm: Hsm = new InstrumentedHsm(await Pkcs11Hsm.open(config.hsm), registry);
  let ds: DataSource;
  try {
    // init and migrate connect as the owner (who grants the service role); serve and everything else as the service role.
    ds = await connectDataSource(options.databaseRole === 'owner' ? (config.ownerDatabaseUrl ?? config.databaseUrl) : config.databaseUrl, config.dbPoolSize);
  } catch (err) {
    await hsm.close();
    throw err;
  }
  const c = root.createChildContainer();
  c.register(TOKENS.config, { useValue: config });
  c.register(TOKENS.hsm, { useValue: hsm });
  c.register(TOKENS.dataSource, { useValue: ds });
  c.register(TOKENS.logger, { useValue: logger });
  // Every append on this data source is checked and sealed by the hub HSM (audit/audit-seal.ts); before init made the keys, from first use.
  sealAuditWith(ds, () => HubKeyring.load(hsm));
  // Lifecycle commands are signed inside other operations' transactions (operations/commands/command-signer.ts).
  signKeyCommandsWith(ds, () => (c.isRegistered(TOKENS.keyring) ? Promise.resolve(c.resolve(TOKENS.keyring)) : HubKeyring.load(hsm)));
  const close = async () => {
    await ds.destroy().catch(() => undefined);
    await hsm.close();
  };
  if (options.requireKeyring ?? true) {
    try {
      c.register(TOKENS.keyring, { useValue: await HubKeyring.load(hsm) });
    } catch (err) {
      await close();
      throw err;
    }
  }
  return { container: c, hsm, ds, logger, registry, close };
}

/**
 * What `keyhub serve` adds for the API: the CA certificates clients pin, and
 * the runners that carry out approved requests, one per policy action.
 */
export function registerApiServices(c: DependencyContainer, ca: HubCa): void {
  c.register(TOKENS.ca, { useValue: ca });
  c.register(HUB_CA_PEMS, { useValue: { rootPem: ca.certificatePem('root'), tlsIssuingPem: ca.certificatePem('tls-issuing'), keyIssuingPem: ca.certificatePem('key-issuing') } });
  const runners: ApprovedActionRunners = new Map<api.PolicyAction, ApprovedActionRunner>([
    ['distribution.sensitive', c.resolve(RequestDistribution)],
    ['listener.approve', c.resolve(RequestListenerApproval)],
    ['operator.manage', c.resolve(OperatorChanges)],
    ['approval_policy.update', c.resolve(UpdatePolicy)],
    ['key.destroy', c.resolve(ChangeKeyState)],
    ['key.compromise', c.resolve(ChangeKeyState)],
    ['listener.decommission', c.resolve(DecommissionListener)],
    ['placement.sensitive', c.resolve(ApprovePlacement)],
    ['listener.target_approve', c.resolve(RequestTargetKekApproval)],
    ['listener.target_update', c.resolve(RequestTargetUpdateApproval)],
    ['key.target_policy', c.resolve(ChangeTargetPolicy)],
    ['listener.root_kek_components', c.resolve(RequestRootKekCeremony)],
  ]);
  c.register(APPROVED_ACTION_RUNNERS, { useValue: runners });
}
