import { readFile } from 'node:fs/promises';
import { KeyhubError } from '@keyhub/shared';
import type { HubConfig } from '../config';
import type { CaKeyLabels, ExternalCaCertificates, HubCaOptions } from '../crypto/ca';

type ExternalFiles = NonNullable<HubConfig['ca']['external']>;

/** The configured token labels of the CA key pairs (the rest keep their defaults). */
export function caKeyLabels(config: HubConfig): Partial<CaKeyLabels> {
  const labels: Partial<CaKeyLabels> = {};
  for (const [k, v] of Object.entries(config.ca.keyLabels ?? {}) as Array<[keyof CaKeyLabels, string | undefined]>) if (v !== undefined) labels[k] = v;
  return labels;
}

async function readPem(file: string, what: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeyhubError('CONFIG_INVALID', `cannot read ${what} ${file}`, { cause: err });
  }
}

/**
 * The external CA's certificates from the files `ca.external` names.
 * `allowAbsent`: undefined when none of them exists yet (init, before the
 * external CA has certified the hub's issuing keys); otherwise every file
 * must be there.
 */
export async function readExternalCa(files: ExternalFiles, options: { allowAbsent?: boolean } = {}): Promise<ExternalCaCertificates | undefined> {
  const entries = [
    ['root', files.rootFile, 'ca.external.rootFile'],
    ['tlsIssuing', files.tlsIssuingFile, 'ca.external.tlsIssuingFile'],
    ['keyIssuing', files.keyIssuingFile, 'ca.external.keyIssuingFile'],
  ] as const;
  const pems = await Promise.all(entries.map(([, file, what]) => readPem(file, what)));
  if (options.allowAbsent && pems.every((p) => p === undefined)) return undefined;
  const missing = entries.filter((_, i) => pems[i] === undefined).map(([, file, what]) => `${what} ${file}`);
  if (missing.length > 0) throw new KeyhubError('CONFIG_INVALID', `the external CA certificate is missing: ${missing.join(', ')}`);
  return { root: pems[0]!, tlsIssuing: pems[1]!, keyIssuing: pems[2]! };
}

/** What `serve` and `nats-config` load the hub CA with: the configured labels, and the external CA's certificates if one is configured. */
export async function hubCaOptions(config: HubConfig): Promise<HubCaOptions> {
  const external = config.ca.external ? await readExternalCa(config.ca.external) : undefined;
  return { labels: caKeyLabels(config), ...(external ? { external } : {}) };
}
