import type { Hsm, KeyHandle } from '@keyhub/shared';
import { CA_PROFILES, labelFor, type CaKeyLabels, type CaProfile } from './profiles';

/** One CA key pair in the hub token. */
export interface CaKeyPair {
  label: string;
  privateKey: KeyHandle;
  spki: Buffer;
}

export type CaKeys = Record<CaProfile, CaKeyPair>;

/** Finds the pair under `label`; undefined unless both halves are token objects there. */
export async function findCaKeyPair(hsm: Hsm, label: string): Promise<CaKeyPair | undefined> {
  const [privateKey] = await hsm.findKeys({ class: 'private', label, token: true });
  const [publicKey] = await hsm.findKeys({ class: 'public', label, token: true });
  if (privateKey === undefined || publicKey === undefined) return undefined;
  return { label, privateKey, spki: await hsm.publicKeySpki(publicKey) };
}

/**
 * Creates whichever CA key pair is missing, as a persistent token object:
 * EC P-256, private half sensitive and never extractable (the port's
 * generateEcP256KeyPair guarantees both). A half-present pair (a public key
 * left behind by an interrupted run) gets a fresh pair beside it; lookups take
 * the first private and public object under the label, so such leftovers
 * must be cleaned up by hand, which `created` makes visible.
 */
export async function ensureCaKeys(hsm: Hsm, labels: CaKeyLabels): Promise<{ keys: CaKeys; created: string[] }> {
  const { keys, created } = await ensureCaKeysFor(hsm, labels, CA_PROFILES);
  return { keys: keys as CaKeys, created };
}

/** As ensureCaKeys, for some of the CAs only (an external root has no key in the token). */
export async function ensureCaKeysFor(hsm: Hsm, labels: CaKeyLabels, profiles: readonly CaProfile[]): Promise<{ keys: Partial<CaKeys>; created: string[] }> {
  const created: string[] = [];
  const keys: Partial<CaKeys> = {};
  for (const profile of profiles) {
    const label = labelFor(labels, profile);
    let pair = await findCaKeyPair(hsm, label);
    if (pair === undefined) {
      const generated = await hsm.generateEcP256KeyPair({ token: true, label, id: Buffer.from(label, 'utf8') });
      pair = { label, privateKey: generated.privateKey, spki: await hsm.publicKeySpki(generated.publicKey) };
      created.push(label);
    }
    keys[profile] = pair;
  }
  return { keys, created };
}

/** The pairs that exist; missing ones are named so the caller can say what `keyhub init` has to create. */
export async function findCaKeys(hsm: Hsm, labels: CaKeyLabels, profiles: readonly CaProfile[] = CA_PROFILES): Promise<{ keys: Partial<CaKeys>; missing: string[] }> {
  const keys: Partial<CaKeys> = {};
  const missing: string[] = [];
  for (const profile of profiles) {
    const label = labelFor(labels, profile);
    const pair = await findCaKeyPair(hsm, label);
    if (pair === undefined) missing.push(label);
    else keys[profile] = pair;
  }
  return { keys, missing };
}
