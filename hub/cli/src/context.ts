import type { Command } from 'commander';
import { HubClient } from './client';
import { loadCredentials } from './credentials';

export interface Globals {
  json: boolean;
}

export function globals(cmd: Command): Globals {
  return { json: cmd.optsWithGlobals<{ json?: boolean }>().json === true };
}

/** A client with the credentials from the environment or `keyhub login`. */
export async function client(): Promise<HubClient> {
  return new HubClient(await loadCredentials({ needToken: true }));
}
