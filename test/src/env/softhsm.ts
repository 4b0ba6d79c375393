import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { findExecutable, run, type ExecResult } from './proc';
import { makeTempDir } from './tmp';

export interface SoftHsmToken {
  label: string;
  pin: string;
  soPin: string;
  /** Slot id SoftHSM reassigned the token to, when softhsm2-util reported it. */
  slotId?: number;
}

export interface SoftHsmEnv {
  dir: string;
  confPath: string;
  modulePath: string;
  /** Merge into a child's environment (or process.env before C_Initialize) to use this token dir. */
  env: { SOFTHSM2_CONF: string };
  tokens: SoftHsmToken[];
  addToken(label: string): Promise<SoftHsmToken>;
  cleanup(): Promise<void>;
}

const MODULE_CANDIDATES = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'];

export function softHsmModulePath(): string {
  const fromEnv = process.env.SOFTHSM2_MODULE;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!existsSync(fromEnv)) throw new Error(`SOFTHSM2_MODULE=${fromEnv} does not exist`);
    return fromEnv;
  }
  const found = MODULE_CANDIDATES.find((p) => existsSync(p));
  if (found === undefined) {
    throw new Error(`SoftHSM2 PKCS#11 module not found (tried ${MODULE_CANDIDATES.join(', ')}); run test/scripts/prepare.sh or set SOFTHSM2_MODULE`);
  }
  return found;
}

function randomPin(): string {
  return randomBytes(8).toString('hex');
}

function withConf(confPath: string): NodeJS.ProcessEnv {
  return { ...process.env, SOFTHSM2_CONF: confPath };
}

/**
 * Creates an isolated SoftHSM2 configuration and token directory with one
 * initialized token per label. Nothing outside the temp dir is touched, so
 * tests can run in parallel with each other and with a system SoftHSM setup.
 */
export async function createSoftHsm(tokenLabels: string[]): Promise<SoftHsmEnv> {
  const modulePath = softHsmModulePath();
  const util = findExecutable('softhsm2-util', 'SOFTHSM2_UTIL', ['/usr/bin/softhsm2-util', '/usr/local/bin/softhsm2-util']);
  const tmp = await makeTempDir('softhsm');
  const tokenDir = path.join(tmp.path, 'tokens');
  const confPath = path.join(tmp.path, 'softhsm2.conf');
  const tokens: SoftHsmToken[] = [];

  const addToken = async (label: string): Promise<SoftHsmToken> => {
    // PKCS#11 token labels are a fixed 32-byte field; longer ones get truncated
    // silently, which would make later lookups by label fail confusingly.
    if (label.length === 0 || Buffer.byteLength(label, 'utf8') > 32) {
      throw new Error(`token label must be 1..32 bytes: ${JSON.stringify(label)}`);
    }
    if (tokens.some((t) => t.label === label)) throw new Error(`duplicate token label ${label}`);
    const token: SoftHsmToken = { label, pin: randomPin(), soPin: randomPin() };
    const res = await run(util, ['--init-token', '--free', '--label', label, '--pin', token.pin, '--so-pin', token.soPin], { env: withConf(confPath) });
    if (res.code !== 0) {
      throw new Error(`softhsm2-util --init-token ${label} failed (${res.code}): ${res.stderr || res.stdout}`);
    }
    const slot = /reassigned to slot (\d+)/.exec(res.stdout);
    if (slot !== null) token.slotId = Number(slot[1]);
    tokens.push(token);
    return token;
  };

  try {
    await mkdir(tokenDir, { mode: 0o700 });
    await writeFile(confPath, [`directories.tokendir = ${tokenDir}`, 'objectstore.backend = file', 'log.level = ERROR', 'slots.removable = false', ''].join('\n'));
    for (const label of tokenLabels) await addToken(label);
  } catch (err) {
    await tmp.remove();
    throw err;
  }

  return {
    dir: tmp.path,
    confPath,
    modulePath,
    env: { SOFTHSM2_CONF: confPath },
    tokens,
    addToken,
    cleanup: () => tmp.remove(),
  };
}

/**
 * Runs pkcs11-tool against the given SoftHSM environment. Test-only: passing
 * `--pin` in args exposes it in the process list, acceptable for throwaway tokens.
 */
export function pkcs11Tool(env: SoftHsmEnv, args: string[]): Promise<ExecResult> {
  const tool = findExecutable('pkcs11-tool', 'PKCS11_TOOL', ['/usr/bin/pkcs11-tool', '/usr/local/bin/pkcs11-tool']);
  return run(tool, ['--module', env.modulePath, ...args], { env: { ...process.env, ...env.env } });
}
