import type { Command } from 'commander';
import { HubBus } from '../../bus/hub-bus';
import { HubContext } from '../../context';
import { ApplyReceipt } from '../../domain/apply-receipt';
import { ConfirmRootKek } from '../../domain/confirm-root-kek';
import { RegisterEnrollment } from '../../domain/register-enrollment';
import { ResendDue } from '../../domain/resend-due';
import { HubService } from '../../service/hub-service';
import { printError, printJson, printLine } from '../output';
import { globalOptions, withRuntime } from '../runtime';

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
            const service = new HubService(c.resolve(HubContext), bus, {
              registerEnrollment: c.resolve(RegisterEnrollment),
              confirmRootKek: c.resolve(ConfirmRootKek),
              applyReceipt: c.resolve(ApplyReceipt),
              resendDue: c.resolve(ResendDue),
            });
            try {
              await service.start();
              if (g.json) printJson({ ready: true });
              else printLine('keyhub serve: ready');
              const signal = await stopped;
              rt.logger.info({ signal }, 'shutting down');
            } finally {
              await service.stop();
            }
          } finally {
            await bus.close();
          }
        },
        { logLevel: 'info' },
      );
    });
}
