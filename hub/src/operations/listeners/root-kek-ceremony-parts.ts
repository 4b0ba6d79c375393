import { aesValueKcv, shamirSplit, wipe, xorCombine, type KeyPart, type SplitScheme } from '@keyhub/shared';
import type { HubKeyring } from '../../crypto/hub-keyring';

/**
 * The parts of a root KEK set up by key components, derived in the hub HSM
 * (HMAC-SHA256 under `keyhub-ceremony`) from the ceremony's id and random
 * nonce, never stored:
 *
 * - XOR: part i is derive("component:i"); the root KEK is their XOR.
 * - Shamir (m of n): the root KEK is derive("secret"), the polynomial's
 *   higher coefficients derive("coefficient:j"); part i is the share at x = i.
 *
 * So the hub can hand each custodian their part when they ask, and no one
 * (the database, a backup, the hub itself) can rebuild a part once the
 * nonce is erased.
 */
export interface CeremonyFacts {
  id: string;
  nonce: Buffer;
  scheme: SplitScheme;
  parts: number;
  threshold: number;
}

const DOMAIN = 'keyhub.v1.root_kek_ceremony';

function derive(keyring: HubKeyring, c: CeremonyFacts, role: string): Promise<Buffer> {
  return keyring.deriveCeremonyValue(Buffer.concat([Buffer.from(`${DOMAIN}\0${c.id}\0`, 'utf8'), c.nonce, Buffer.from(`\0${role}`, 'utf8')]));
}

/** Every part and the root KEK; the caller wipes all of them. */
export async function deriveAll(keyring: HubKeyring, c: CeremonyFacts): Promise<{ parts: KeyPart[]; kek: Buffer }> {
  if (c.scheme === 'xor') {
    const parts: KeyPart[] = [];
    try {
      for (let x = 1; x <= c.parts; x++) parts.push({ x, value: await derive(keyring, c, `component:${x}`) });
      return { parts, kek: xorCombine(parts.map((p) => p.value)) };
    } catch (err) {
      wipe(...parts.map((p) => p.value));
      throw err;
    }
  }
  const secret = await derive(keyring, c, 'secret');
  const coefficients: Buffer[] = [];
  try {
    for (let j = 1; j < c.threshold; j++) coefficients.push(await derive(keyring, c, `coefficient:${j}`));
    return { parts: shamirSplit(secret, coefficients, c.parts), kek: secret };
  } catch (err) {
    wipe(secret);
    throw err;
  } finally {
    wipe(...coefficients);
  }
}

/** One part (1-based), as its custodian receives it; the caller wipes it. */
export async function derivePart(keyring: HubKeyring, c: CeremonyFacts, x: number): Promise<KeyPart> {
  if (c.scheme === 'xor') return { x, value: await derive(keyring, c, `component:${x}`) };
  const { parts, kek } = await deriveAll(keyring, c);
  wipe(kek, ...parts.filter((p) => p.x !== x).map((p) => p.value));
  return parts[x - 1];
}

/** The KCV of each part (AES-CMAC of the part as an AES-256 key), by index. */
export function partKcvs(parts: KeyPart[]): string[] {
  return parts.map((p) => aesValueKcv(p.value));
}
