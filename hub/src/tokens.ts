import type { InjectionToken } from 'tsyringe';
import type { DataSource } from 'typeorm';
import type { Hsm, Logger } from '@keyhub/shared';
import type { HubConfig } from './config';
import type { HubCa } from './crypto/ca';
import type { HubKeyring } from './crypto/hub-keyring';

/** Injection tokens for what is not a class of ours. */
export const TOKENS = {
  config: Symbol('HubConfig') as InjectionToken<HubConfig>,
  dataSource: Symbol('DataSource') as InjectionToken<DataSource>,
  hsm: Symbol('Hsm') as InjectionToken<Hsm>,
  logger: Symbol('Logger') as InjectionToken<Logger>,
  keyring: Symbol('HubKeyring') as InjectionToken<HubKeyring>,
  /** The hub CA, for operations that issue certificates (registered with the API services). */
  ca: Symbol('HubCa') as InjectionToken<HubCa>,
};
