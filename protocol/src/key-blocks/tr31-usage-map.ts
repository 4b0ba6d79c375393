import type { KeyAlgorithm, KeyUsage } from '../messages/common';
import { Tr31Error } from './tr31-error';
import type { Tr31Algorithm, Tr31Exportability, Tr31KeyContext, Tr31ModeOfUse } from './tr31-fields';

/** What Keyhub knows of a key version that a TR-31 header must carry. */
export interface Tr31UsageInput {
  algorithm: KeyAlgorithm;
  usages: readonly KeyUsage[];
  exportable: boolean;
  /** Keyhub key version; 1..99 go into the header, others are written as '00' (no version), since the field has two characters. */
  version?: number;
  /** The TR-31 key usage a target expects instead of the default (P0 for a PIN key, K1 for a KBPK); it must fit the Keyhub usages. */
  keyUsage?: string;
}

export interface Tr31HeaderFields {
  keyUsage: string;
  algorithm: Tr31Algorithm;
  modeOfUse: Tr31ModeOfUse;
  keyVersion: string;
  exportability: Tr31Exportability;
  keyContext: Tr31KeyContext;
}

type Family = 'wrap' | 'encrypt' | 'mac' | 'derive';

/** Each family: the Keyhub usages it is made of, the mode of use for each subset, and the TR-31 key usages it may be given. */
const FAMILIES: Record<Family, { usages: readonly KeyUsage[]; modes: Record<string, Tr31ModeOfUse>; keyUsages: readonly string[] }> = {
  wrap: { usages: ['wrap', 'unwrap'], modes: { 'unwrap,wrap': 'B', wrap: 'E', unwrap: 'D' }, keyUsages: ['K0', 'K1'] },
  encrypt: { usages: ['encrypt', 'decrypt'], modes: { 'decrypt,encrypt': 'B', encrypt: 'E', decrypt: 'D' }, keyUsages: ['D0', 'D2', 'D3', 'P0'] },
  mac: { usages: ['sign', 'verify'], modes: { 'sign,verify': 'C', sign: 'G', verify: 'V' }, keyUsages: ['M0', 'M1', 'M2', 'M3', 'M4', 'M5', 'M6', 'M7', 'M8', 'C0', 'V0', 'V1', 'V2', 'V3', 'V4'] },
  derive: { usages: ['derive'], modes: { derive: 'X' }, keyUsages: ['B0', 'B1', 'B3', 'E0', 'E1', 'E2', 'E3', 'E4', 'E5', 'E6'] },
};

/** The default TR-31 key usage of a family for each header algorithm: CMAC (M6) for block ciphers, HMAC (M7) for HMAC keys. */
const DEFAULT_KEY_USAGE: Record<Family, Partial<Record<Tr31Algorithm, string>>> = {
  wrap: { A: 'K0', T: 'K0' },
  encrypt: { A: 'D0', T: 'D0' },
  mac: { A: 'M6', T: 'M6', H: 'M7' },
  derive: { A: 'B3', T: 'B3' },
};

function headerAlgorithm(algorithm: KeyAlgorithm): Tr31Algorithm {
  if (algorithm.startsWith('AES-')) return 'A';
  if (algorithm.startsWith('TDES-')) return 'T';
  if (algorithm.startsWith('HMAC-')) return 'H';
  // Asymmetric keys travel in TR-31 as DER with their own usages (S0, D1, K3); generic secrets have no TR-31 algorithm.
  throw new Tr31Error('TR31_UNSUPPORTED', `keys of algorithm ${algorithm} are not carried in TR-31 key blocks here`);
}

function familyOf(usages: readonly KeyUsage[]): Family {
  const distinct = [...new Set(usages)];
  const family = (Object.keys(FAMILIES) as Family[]).find((f) => distinct.length > 0 && distinct.every((u) => FAMILIES[f].usages.includes(u)));
  if (!family) throw new Tr31Error('TR31_USAGE_UNMAPPABLE', `usages [${distinct.join(', ')}] do not form one TR-31 key usage (one of wrap/unwrap, encrypt/decrypt, sign/verify, derive)`);
  return family;
}

/**
 * The header fields a Keyhub key gets in a TR-31 key block. A TR-31 key has
 * one usage, so Keyhub usages from different families are refused, not
 * merged: the header must not grant the target more than the policy does.
 * A non-exportable key is 'N'; an exportable one is 'E' (only under a KEK
 * in a key block), never 'S'.
 */
export function tr31HeaderFieldsFor(input: Tr31UsageInput): Tr31HeaderFields {
  const algorithm = headerAlgorithm(input.algorithm);
  const family = familyOf(input.usages);
  const keyUsage = input.keyUsage ?? DEFAULT_KEY_USAGE[family][algorithm];
  if (keyUsage === undefined || !FAMILIES[family].keyUsages.includes(keyUsage)) {
    throw new Tr31Error('TR31_USAGE_UNMAPPABLE', `TR-31 key usage ${keyUsage ?? '(none)'} does not fit usages [${input.usages.join(', ')}] of a ${input.algorithm} key`);
  }
  if ((algorithm === 'H') !== (keyUsage === 'M7')) throw new Tr31Error('TR31_USAGE_UNMAPPABLE', `TR-31 key usage ${keyUsage} does not fit a ${input.algorithm} key`);
  const modeKey = [...new Set(input.usages)].sort().join(',');
  const v = input.version;
  const keyVersion = v !== undefined && Number.isInteger(v) && v >= 1 && v <= 99 ? String(v).padStart(2, '0') : '00';
  return { keyUsage, algorithm, modeOfUse: FAMILIES[family].modes[modeKey], keyVersion, exportability: input.exportable ? 'E' : 'N', keyContext: '0' };
}

/**
 * The reverse, for the receiving side: the Keyhub usages a header grants.
 * A target checks them against the package's policy before it imports.
 */
export function keyhubUsagesFromTr31(fields: Pick<Tr31HeaderFields, 'keyUsage' | 'modeOfUse'>): KeyUsage[] {
  const family = (Object.keys(FAMILIES) as Family[]).find((f) => FAMILIES[f].keyUsages.includes(fields.keyUsage));
  const entry = family && Object.entries(FAMILIES[family].modes).find(([, mode]) => mode === fields.modeOfUse);
  if (!entry) throw new Tr31Error('TR31_USAGE_UNMAPPABLE', `TR-31 key usage ${fields.keyUsage} with mode of use ${fields.modeOfUse} has no Keyhub usages`);
  return entry[0].split(',') as KeyUsage[];
}
