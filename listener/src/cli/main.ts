#!/usr/bin/env node
import 'reflect-metadata';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { ERROR_CODES, EXIT } from '@keyhub/protocol';
import { KeyhubError, aesKcv, defaultPkcs11Module, redactSecrets, serveObservabilityFromEnv, terminalSafe, wipe } from '@keyhub/shared';
import { ListenerAgent } from '../agent';
import { listenerHome, loadListenerConfig, saveListenerConfig, secureHome } from '../config';
import { ListenerNatsCredentials } from '../bus/nats-credentials';
import { ListenerMetrics } from '../observability/listener-metrics';
import { enroll, openListenerRuntime } from '../runtime';
import { ListenerBus } from '../bus/listener-bus';
import { requestTargetKek, requestTargetUpdate, targetSettingsSummary } from '../targets/target-keks';
import { Journal } from '../state/journal';
import { CheckpointStore, exportWitness } from '../state/checkpoints';
import { HubKeyStore } from '../state/hub-key';
import { CeremonyStore } from '../state/ceremony';
import { ceremonyConfirmation, collectParts, combineParts, loadCeremony } from '../enrollment/root-kek-ceremony';
import { readHiddenLine } from './hidden-input';

/** One above the hub's 9464, so a hub and a listener on one machine do not collide; KEYHUB_HTTP_PORT overrides, 0 turns it off. */
const DEFAULT_HTTP_PORT = 9465;

interface GlobalOptions {
  home?: string;
  json?: boolean;
}

const program = new Command('keyhub-listener')
  .description('Keyhub listener agent: enrolls with the hub once, then imports the keys it pushes into local targets')
  .option('--home <dir>', 'state directory (default $KEYHUB_LISTENER_HOME or ~/.keyhub-listener)')
  .option('--json', 'machine-readable output')
  .exitOverride();

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
const out = (human: string, json: unknown): void => {
  process.stdout.write(globals().json ? JSON.stringify(json) + '\n' : human + '\n');
};
/**
 * A value from outside this program (operator input, a token's labels, a
 * path, an error text) for the human output: secrets redacted, control and
 * bidi characters escaped so it cannot drive the terminal. JSON output needs
 * neither: JSON.stringify escapes control characters, and a program reads it.
 */
const shown = (v: unknown): string => terminalSafe(redactSecrets(String(v)));

/** A file the operator handed over, kept in the home so the home is all a site needs. */
function copyIntoHome(home: string, from: string, name: string, mode: number): string {
  secureHome(home);
  const to = join(home, name);
  writeFileSync(to, readFileSync(from), { mode });
  return to;
}

program
  .command('init')
  .description('write the listener configuration (no secrets: the PIN is read from an environment variable or a file)')
  .requiredOption('--id <id>', 'listener id (lower case letters, digits, dashes)')
  .requiredOption('--nats <urls>', 'NATS server URLs, comma-separated')
  .requiredOption('--hub-fingerprint <fp>', 'hub signing key fingerprint, as printed by `keyhub init` (compare out of band)')
  .option('--hsm-module <path>', 'PKCS#11 module', defaultPkcs11Module())
  .requiredOption('--token-label <label>', 'token holding the listener keys and imported keys')
  .addOption(new Option('--pin-env <name>', 'environment variable holding the token PIN').default('KEYHUB_LISTENER_PIN'))
  .option('--pin-file <path>', 'file holding the token PIN')
  .option('--target <name>', 'a PKCS#11 target name (repeatable); the target is the listener token', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--oaep-hash <hash>', 'OAEP hash of the root KEK transport (sha1 for SoftHSM 2.6)', 'sha1')
  .option('--nats-ca <file>', "hub CA certificate (PEM) the NATS servers' certificates are checked against; copied into the home")
  .option('--bootstrap-creds <file>', 'the bootstrap credential from `keyhub listener register` (a .creds file); copied into the home, 0600')
  .action(
    (o: {
      id: string;
      nats: string;
      hubFingerprint: string;
      hsmModule: string;
      tokenLabel: string;
      pinEnv?: string;
      pinFile?: string;
      target: string[];
      oaepHash: 'sha1' | 'sha256';
      natsCa?: string;
      bootstrapCreds?: string;
    }) => {
      const home = listenerHome(globals().home);
      const caFile = o.natsCa ? copyIntoHome(home, o.natsCa, 'nats-ca.pem', 0o644) : undefined;
      if (o.bootstrapCreds) new ListenerNatsCredentials(home, o.id).importBootstrap(o.bootstrapCreds);
      const targets = (o.target.length ? o.target : ['hsm']).map((name) => ({ name, kind: 'pkcs11' as const }));
      const config = saveListenerConfig(home, {
        id: o.id,
        nats: { servers: o.nats.split(','), ...(caFile ? { caFile } : {}) },
        hubFingerprint: o.hubFingerprint,
        hsm: { module: o.hsmModule, tokenLabel: o.tokenLabel, pinEnv: o.pinEnv, pinFile: o.pinFile },
        targets,
        oaepHash: o.oaepHash,
      });
      out(`listener ${shown(config.id)} configured in ${shown(home)}`, { id: config.id, home });
    },
  );

program
  .command('enroll')
  .description('create the identity and transport keys in the HSM and send a signed enrollment request to the hub')
  .action(async () => {
    const rt = await openListenerRuntime(listenerHome(globals().home));
    try {
      const r = await enroll(rt);
      out(
        `enrollment request sent for listener ${shown(rt.config.id)}\nfingerprint: ${shown(r.fingerprint)}\nAsk the hub operator to approve with this fingerprint (compare it by phone or in person).`,
        { listenerId: rt.config.id, fingerprint: r.fingerprint, createdKeys: r.createdKeys },
      );
    } finally {
      await rt.close();
    }
  });

program
  .command('run')
  .description('run the agent: install the root KEK when approved, import pushed keys, send receipts and heartbeats')
  .addHelpText('after', `\nHTTP endpoint (GET /metrics, /healthz, /readyz): KEYHUB_HTTP_HOST (default 127.0.0.1), KEYHUB_HTTP_PORT (default ${DEFAULT_HTTP_PORT}, 0 = off).`)
  .action(async () => {
    const rt = await openListenerRuntime(listenerHome(globals().home));
    const agent = new ListenerAgent(rt, {
      onReady: (state) => out(`keyhub-listener run: ${state === 'consuming' ? 'ready' : 'waiting for approval'}`, { ready: state === 'consuming', state }),
      onResult: (r) => metrics.record(r),
    });
    const metrics = new ListenerMetrics(rt.registry, () => agent.lastSequence);
    // Up before the agent starts: while it waits for approval, readiness says so instead of refusing connections.
    const http = await serveObservabilityFromEnv(DEFAULT_HTTP_PORT, { registry: rt.registry, readiness: () => agent.readiness() }, rt.logger).catch(async (err: unknown) => {
      await rt.close();
      throw err;
    });
    const shutdown = async () => {
      await http?.close();
      await agent.stop();
      await rt.close();
      process.exit(EXIT.ok);
    };
    process.once('SIGINT', () => void shutdown());
    process.once('SIGTERM', () => void shutdown());
    await agent.start();
  });

const rootKekCmd = program.command('root-kek').description('the root KEK, when it is set up by key components (split knowledge)');
rootKekCmd
  .command('enter')
  .description('each custodian types their component (hidden) in this terminal; each is checked by its KCV, then they are combined into the token and the KCV confirmed with the hub')
  .action(async () => {
    if (!process.stdin.isTTY) throw new KeyhubError('TERMINAL_REQUIRED', 'key components are entered in a terminal, with hidden input; run this command in one');
    const rt = await openListenerRuntime(listenerHome(globals().home));
    try {
      const store = new CeremonyStore(rt.home);
      const ceremony = loadCeremony({ listenerId: rt.config.id, hubKeys: rt.hubKeys, store });
      const { kek } = ceremony;
      const scheme = ceremony.scheme === 'xor' ? `${ceremony.parts.length} XOR components, all needed` : `Shamir shares, any ${ceremony.threshold} of ${ceremony.parts.length}`;
      process.stderr.write(
        `root KEK ceremony ${ceremony.ceremonyId} for listener ${shown(rt.config.id)}: ${scheme}\n` +
          `custodians: ${ceremony.parts.map((p) => `${p.index} ${p.custodian} (KCV ${p.kcv})`).join(', ')}\n` +
          `the root KEK's KCV will be ${kek.kcv}\n`,
      );
      let result: 'stored' | 'present' = 'present';
      if (!(await rt.keys.findKek(kek.id, kek.version))) {
        const parts = await collectParts(ceremony, { say: (t) => process.stderr.write(`${t}\n`), ask: readHiddenLine });
        let value: Buffer | undefined;
        try {
          value = combineParts(ceremony, parts);
          result = await rt.keys.installCombinedRootKek(value, kek.id, kek.version, (h) => aesKcv(rt.keys.hsm, h), kek.kcv);
        } finally {
          wipe(value, ...parts.map((p) => p.value));
        }
      }
      // The hub activates the site on this confirmation; a lost one is sent again by running the command again.
      const bus = await ListenerBus.connect(rt.config.nats.servers, rt.config.id, rt.logger, rt.nats);
      try {
        await bus.publishUp('kek_confirm', await ceremonyConfirmation(rt.keys, rt.config.id, ceremony));
      } finally {
        await bus.close();
      }
      store.remove();
      out(
        `root KEK ${kek.id} v${kek.version} ${result === 'stored' ? 'installed' : 'already installed'} in token "${shown(rt.keys.hsm.tokenLabel)}": KCV ${kek.kcv}, equal to the hub's; confirmation sent to the hub`,
        {
          kekId: kek.id,
          version: kek.version,
          kcv: kek.kcv,
          result,
        },
      );
    } finally {
      await rt.close();
    }
  });

const targetCmd = program.command('target').description("targets added or removed after enrollment (signed updates an operator approves), and PKCS#11 targets' own KEKs");
targetCmd
  .command('request')
  .description("make a transport key in the target token and ask the hub for this target's own KEK (an operator approves it with the fingerprint shown)")
  .argument('<name>', 'target name (a pkcs11 target with its own hsm in listener.json)')
  .action(async (name: string) => {
    const rt = await openListenerRuntime(listenerHome(globals().home));
    try {
      const bus = await ListenerBus.connect(rt.config.nats.servers, rt.config.id, rt.logger, rt.nats);
      try {
        const r = await requestTargetKek({ listenerId: rt.config.id, keys: rt.keys, tokens: rt.targetTokens, bus, now: () => new Date() }, name);
        out(
          `target KEK requested for ${shown(name)} of listener ${shown(rt.config.id)}\ntransport key fingerprint: ${shown(r.fingerprint)}\nAsk the hub operator to run \`keyhub listener target approve ${shown(rt.config.id)} ${shown(name)} --fingerprint <this>\` after comparing it.`,
          { listenerId: rt.config.id, target: name, fingerprint: r.fingerprint, createdKey: r.createdKey },
        );
      } finally {
        await bus.close();
      }
    } finally {
      await rt.close();
    }
  });

/** `--setting k=v` (repeatable): a non-secret setting to show the operator, added to the summary taken from listener.json. */
function settingsOption(v: string, acc: Record<string, string>): Record<string, string> {
  const at = v.indexOf('=');
  if (at < 1) throw new KeyhubError('INPUT_INVALID', `--setting takes name=value, got ${v}`);
  return { ...acc, [v.slice(0, at)]: v.slice(at + 1) };
}

/** Signs and sends a target update; the hub holds it until an operator approves it. */
async function sendTargetUpdate(op: 'add' | 'remove', name: string, o: { kind?: string; setting: Record<string, string> }): Promise<void> {
  const rt = await openListenerRuntime(listenerHome(globals().home));
  try {
    const configured = rt.config.targets.find((t) => t.name === name);
    if (op === 'add' && !configured) throw new KeyhubError('TARGET_UNKNOWN', `no target named ${name} in listener.json: add it there first`);
    const kind = o.kind ?? configured?.kind;
    if (!kind) throw new KeyhubError('INPUT_INVALID', `give --kind: target ${name} is no longer in listener.json`);
    const settings = { ...(configured ? targetSettingsSummary(configured) : {}), ...o.setting };
    const bus = await ListenerBus.connect(rt.config.nats.servers, rt.config.id, rt.logger, rt.nats);
    try {
      const u = await requestTargetUpdate({ listenerId: rt.config.id, keys: rt.keys, bus, now: () => new Date() }, { op, target: name, kind, settings });
      out(
        `target ${op === 'add' ? 'addition' : 'removal'} sent for ${shown(name)} (${shown(kind)}) of listener ${shown(rt.config.id)}\nupdate request ${shown(u.id)}\nAsk the hub operator to check it with \`keyhub listener target list ${shown(rt.config.id)}\` and approve it with \`keyhub listener target approve-update\`.`,
        { listenerId: rt.config.id, target: name, op, kind, settings, requestId: u.id },
      );
    } finally {
      await bus.close();
    }
  } finally {
    await rt.close();
  }
}

targetCmd
  .command('add')
  .description('ask the hub to add a target configured in listener.json after enrollment, by a signed update an operator approves (any kind)')
  .argument('<name>', 'target name in listener.json')
  .option('--setting <name=value>', 'a non-secret setting to show the operator (repeatable)', settingsOption, {} as Record<string, string>)
  .action(async (name: string, o: { setting: Record<string, string> }) => sendTargetUpdate('add', name, o));

targetCmd
  .command('remove')
  .description('ask the hub to remove a target, by a signed update an operator approves; once approved the hub sends it nothing more')
  .argument('<name>', 'target name')
  .option('--kind <kind>', 'its kind, when it is no longer in listener.json')
  .option('--setting <name=value>', 'a non-secret setting to show the operator (repeatable)', settingsOption, {} as Record<string, string>)
  .action(async (name: string, o: { kind?: string; setting: Record<string, string> }) => sendTargetUpdate('remove', name, o));

program
  .command('status')
  .description('show enrollment state and what this listener has processed')
  .action(async () => {
    const home = listenerHome(globals().home);
    const rt = await openListenerRuntime(home);
    try {
      const journal = Journal.open(home);
      const s = {
        id: rt.config.id,
        enrolled: await rt.keys.hasIdentity(),
        fingerprint: (await rt.keys.hasIdentity()) ? await rt.keys.enrollmentFingerprint(rt.config.id, rt.nats.credentials?.userKey()) : null,
        hubKeyPinned: rt.hubKeys.load() !== undefined,
        rootKeks: await rt.keys.rootKekCount(),
        lastSequence: journal.lastSequence,
        processedPackages: journal.size,
        targets: rt.config.targets.map((t) => t.name),
      };
      journal.close();
      out(
        Object.entries(s)
          .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.map(shown).join(', ') : shown(v)}`)
          .join('\n'),
        s,
      );
    } finally {
      await rt.close();
    }
  });

program
  .command('inventory')
  .description('list the Keyhub keys present in each target')
  .action(async () => {
    const rt = await openListenerRuntime(listenerHome(globals().home));
    try {
      const rows = [];
      for (const t of rt.targets.values()) for (const item of await t.inventory()) rows.push({ target: t.name, ...item });
      out(rows.map((r) => [r.target, r.label, r.keyId, `v${r.version}`, r.algorithm].map(shown).join('\t')).join('\n') || '(no keys)', rows);
    } finally {
      await rt.close();
    }
  });

const checkpoints = program.command('checkpoints').description("this site's copy of the hub's signed audit checkpoints (its witness of the hub's history)");
checkpoints
  .command('export')
  .description('write the checkpoints this site holds, with the hub key it pinned, for `keyhub audit verify --witness` (no HSM or PIN needed)')
  .requiredOption('--out <file>', 'file to write (must not exist)')
  .action((o: { out: string }) => {
    const home = listenerHome(globals().home);
    const config = loadListenerConfig(home);
    const summary = exportWitness(CheckpointStore.open(home), { listenerId: config.id, hubFingerprint: config.hubFingerprint, hubKey: new HubKeyStore(home, config.hubFingerprint).load() }, o.out);
    out(`exported ${summary.checkpoints} checkpoint(s) up to event ${summary.lastSeq} to ${summary.file}`, summary);
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof Error && 'exitCode' in err && typeof (err as { exitCode: unknown }).exitCode === 'number' && (err as { code?: string }).code?.startsWith('commander.')) {
      const code = (err as { exitCode: number }).exitCode;
      process.exit(code === 0 ? EXIT.ok : EXIT.usage);
    }
    const e = KeyhubError.from(err);
    // Error texts can carry what a user typed or a server answered (URLs with credentials among them).
    if (globals().json) process.stdout.write(redactSecrets(JSON.stringify({ error: e.toJSON() })) + '\n');
    else process.stderr.write(`error [${e.code}]: ${shown(e.message)}\n`);
    if (process.env.KEYHUB_DEBUG === '1') process.stderr.write(`${shown((err as Error).stack ?? '')}\n`);
    process.exit(ERROR_CODES[e.code].exitCode);
  }
}

void main();
