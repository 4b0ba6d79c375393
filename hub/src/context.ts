import { inject, injectable } from 'tsyringe';
import type { DataSource } from 'typeorm';
import type { Logger } from '@keyhub/shared';
import type { HubConfig } from './config';
import type { HubKeyring } from './crypto/hub-keyring';
import { TOKENS } from './tokens';

/** What every hub operation needs: the store, the keyring, the config, a logger. */
@injectable()
export class HubContext {
  constructor(
    @inject(TOKENS.dataSource) readonly ds: DataSource,
    @inject(TOKENS.keyring) readonly keyring: HubKeyring,
    @inject(TOKENS.config) readonly config: HubConfig,
    @inject(TOKENS.logger) readonly logger: Logger,
  ) {}
}
