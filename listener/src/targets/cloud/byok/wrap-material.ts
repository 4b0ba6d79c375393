import type { KeyAlgorithm } from '@keyhub/protocol';
import type { ByokMaterial } from '../importer';
import type { ByokWrapAlgorithm } from './algorithms';
import { wrapInHsm, type HsmWrapOptions } from './hsm-wrap';
import { materialKcv } from './material-kcv';
import { ScratchBuffers } from './scratch';
import { wrapInMemory } from './software-wrap';

export interface WrappedMaterial {
  blob: Buffer;
  /** KCV over exactly the material inside `blob`. */
  kcv: string;
}

/**
 * Wraps material for a cloud's wrapping key: in the HSM when the material is
 * an HSM object, in memory when it is bytes. Bytes are wiped afterwards
 * unless `keepBytes` (a re-wrap after an expired import token needs them
 * again: the importer then wipes them itself once done).
 */
export async function wrapMaterial(material: ByokMaterial, algorithm: KeyAlgorithm, spki: Buffer, alg: ByokWrapAlgorithm, hsmOptions: HsmWrapOptions, keepBytes = false): Promise<WrappedMaterial> {
  if (material.source === 'hsm') {
    return { blob: await wrapInHsm(material.hsm, spki, material.handle, material.lengthBytes, alg, hsmOptions), kcv: material.kcv };
  }
  const scratch = new ScratchBuffers();
  if (!keepBytes) scratch.hold(material.bytes);
  try {
    const kcv = materialKcv(algorithm, material.bytes);
    return { blob: wrapInMemory(spki, material.bytes, alg, scratch), kcv };
  } finally {
    scratch.wipe();
  }
}
