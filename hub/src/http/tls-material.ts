import type { InjectionToken } from 'tsyringe';

/** The CA certificates as PEM, for clients to pin (registered by the composition root). */
export interface HubCaPems {
  rootPem: string;
  tlsIssuingPem: string;
  keyIssuingPem: string;
}
export const HUB_CA_PEMS: InjectionToken<HubCaPems> = Symbol('HubCaPems');
