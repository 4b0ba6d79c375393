import type { Command } from 'commander';
import { serveObservabilityFromEnv } from '@keyhub/shared';
import { HubBus } from '../../bus/hub-bus';
import { HubContext } from '../../context';
import { ApplyReceipt } from '../../domain/apply-receipt';
import { ConfirmRootKek } from '../../domain/confirm-root-kek';
import { RegisterEnrollment } from '../../domain/register-enrollment';
import { ResendDue } from '../../domain/resend-due';
import { HubMetrics } from '../../observability/hub-metrics';
import { hubReadiness } from '../../observability/hub-readiness';
import { HubService } from '../../service/hub-service';
import { printError, printJson, printLine } from '../output';
import { globalOptions, withRuntime } from '../runtime';

/** KEYHUB_HTTP_PORT overrides it and 0 turns it off; the listener defaults to the next port so both can share a machine. */
const DEFAULT_HTTP_PORT = 9464;

/** Resolves with the first SIGINT or SIGTERM; a second one means "stop waiting for a clean shutdown". */
function shutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) {
        printError(`keyhub serve: ${signal} again, exiting without a clean shutdown`);
        process.exit(1);
      }
      received = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the hub: relay the outbox to NATS, take enrollments and receipts, re-send, sign audit checkpoints')
    .addHelpText(
      'after',
      `\nHTTP endpoint (GET /metrics, /healthz, /readyz): KEYHUB_HTTP_HOST (default 127.0.0.1), KEYHUB_HTTP_PORT (default ${DEFAULT_HTTP_PORT}, 0 = off).`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalOptions(cmd);
      // Registered before anything opens, so a signal during start-up still ends in a clean close.
      const stopped = shutdownSignal();
      await withRuntime(
        g,
        async (rt, config) => {
          const bus = await HubBus.connect({ servers: config.nats.servers, name: config.nats.name, replicas: config.nats.replicas }, rt.logger);
          try {
            const c = rt.container;
            const service = new HubService(
              c.resolve(HubContext),
              bus,
              {
                registerEnrollment: c.resolve(RegisterEnrollment),
                confirmRootKek: c.resolve(ConfirmRootKek),
                applyReceipt: c.resolve(ApplyReceipt),
                resendDue: c.resolve(ResendDue),
              },
              new HubMetrics(rt.registry, rt.ds, rt.logger),
            );
            // Up before the service starts, so liveness answers during a slow start and readiness says "starting".
            const http = await serveObservabilityFromEnv(
              DEFAULT_HTTP_PORT,
              { registry: rt.registry, readiness: hubReadiness({ ds: rt.ds, nats: bus.connection, hsm: rt.hsm, service: () => service.state }) },
              rt.logger,
            );
            try {
              try {
                await service.start();
                if (g.json) printJson({ ready: true, ...(http ? { http: http.url } : {}) });
                else printLine(`keyhub serve: ready${http ? ` (metrics, healthz, readyz on ${http.url})` : ''}`);
                const signal = await stopped;
                rt.logger.info({ signal }, 'shutting down');
              } finally {
                await service.stop();
              }
            } finally {
              await http?.close();
            }
          } finally {
            await bus.close();
          }
        },
        { logLevel: 'info' },
      );
    });
}
