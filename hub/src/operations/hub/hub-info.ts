import { inject, injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { HUB_CA_PEMS, type HubCaPems } from '../../http/tls-material';

/** What the hub says about itself: the fingerprint listeners pin, the CA certificates clients pin. */
@injectable()
export class HubInfo {
  constructor(
    private readonly ctx: HubContext,
    @inject(HUB_CA_PEMS) private readonly ca: HubCaPems,
  ) {}

  fingerprint(): string {
    return this.ctx.keyring.fingerprint;
  }

  caBundle(): api.CaBundle {
    if (!this.ca.rootPem) throw new KeyhubError('NOT_INITIALIZED', 'the hub CA is not set up: run `keyhub init`');
    return { rootPem: this.ca.rootPem, tlsIssuingPem: this.ca.tlsIssuingPem, keyIssuingPem: this.ca.keyIssuingPem };
  }
}
