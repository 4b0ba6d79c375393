import { readFile, stat } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import type { Command } from 'commander';
import type { FastifyRequest } from 'fastify';
import { KeyhubError, serveObservabilityFromEnv } from '@keyhub/shared';
import type { HubConfig } from '../config';
import { HubBus, hubBusOptions } from '../bus/hub-bus';
import { hubNatsAccess } from '../nats/hub-nats';
import { registerApiServices } from '../container';
import { HubContext } from '../context';
import { HubCa, serverTlsMaterial, verifyClientCertificate } from '../crypto/ca';
import type { Principal } from '../domain/principal';
import { buildApiServer } from '../http/server';
import { HubMetrics } from '../observability/hub-metrics';
import { hubReadiness } from '../observability/hub-readiness';
import { ApplyReceipt } from '../operations/distributions/apply-receipts';
import { ResendDue } from '../operations/distributions/resend-due';
import { ConfirmRootKek } from '../operations/listeners/confirm-root-kek';
import { RegisterEnrollment } from '../operations/listeners/register-enrollment';
import { AuthenticateCertificate } from '../operations/operators/authenticate-certificate';
import { AuthenticateToken } from '../operations/operators/authenticate-token';
import { assertAuditAppendOnly } from '../operations/audit/service-role';
import { HubService } from '../service/hub-service';
import { printError, printJson, printLine } from './output';
import { hubCaOptions } from './ca-options';
import { adminOptions, shutdownSignal, withRuntime } from './runtime';

/**
 * The API's certificate: one the operator brought (PEM files), or a fresh key
 * in memory with a certificate from the hub CA, issued at every start. Client
 * certificates are always checked against the hub CA.
 */
async function apiTlsMaterial(ca: HubCa, api: HubConfig['api']): Promise<{ key: string; cert: string; ca: string }> {
  if (api.tlsCertFile !== undefined || api.tlsKeyFile !== undefined) {
    if (!api.tlsCertFile || !api.tlsKeyFile) throw new KeyhubError('CONFIG_INVALID', 'api.tlsCertFile and api.tlsKeyFile go together');
    await assertOwnerOnly(api.tlsKeyFile, 'api.tlsKeyFile');
    return { cert: await readFile(api.tlsCertFile, 'utf8'), key: await readFile(api.tlsKeyFile, 'utf8'), ca: ca.certificatePem('root') };
  }
  const m = await serverTlsMaterial(ca, { hostnames: api.hostnames, ips: api.ipAddresses, actor: 'system:serve' });
  return { key: m.key, cert: m.cert, ca: m.ca };
}

/** A private key file others can read is a leaked key: refused, not used. */
async function assertOwnerOnly(file: string, what: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new KeyhubError('CONFIG_INVALID', `${what} ${file} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
}

/** KEYHUB_HTTP_PORT overrides it and 0 turns it off; the listener defaults to the next port so both can share a machine. */
const DEFAULT_HTTP_PORT = 9464;
const VERSION = '0.2.0';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description("run the hub: the operators' HTTPS API, the outbox relay, enrollments and receipts, re-sends, audit checkpoints")
    .addHelpText('after', `\nMetrics endpoint (GET /metrics, /healthz, /readyz): KEYHUB_HTTP_HOST (default 127.0.0.1), KEYHUB_HTTP_PORT (default ${DEFAULT_HTTP_PORT}, 0 = off).`)
    .action(async (_opts: unknown, cmd: Command) => {
      const o = adminOptions(cmd);
      // Registered before anything opens, so a signal during start-up still ends in a clean close.
      const stopped = shutdownSignal((signal) => {
        printError(`keyhub serve: ${signal} again, exiting without a clean shutdown`);
        process.exit(1);
      });
      await withRuntime(
        o,
        async (rt, config) => {
          const c = rt.container;
          await assertAuditAppendOnly(rt.ds);
          const ca = await HubCa.load(rt.hsm, rt.ds, await hubCaOptions(config));
          registerApiServices(c, ca);
          const nats = await hubNatsAccess(rt.hsm, rt.ds, config, ca, rt.logger);
          const bus = await HubBus.connect(hubBusOptions(config.nats, nats), rt.logger);
          try {
            const service = new HubService(
              c.resolve(HubContext),
              bus,
              { registerEnrollment: c.resolve(RegisterEnrollment), confirmRootKek: c.resolve(ConfirmRootKek), applyReceipt: c.resolve(ApplyReceipt), resendDue: c.resolve(ResendDue) },
              new HubMetrics(rt.registry, rt.ds, rt.logger),
            );
            const http = await serveObservabilityFromEnv(
              DEFAULT_HTTP_PORT,
              { registry: rt.registry, readiness: hubReadiness({ ds: rt.ds, nats: bus.connection, hsm: rt.hsm, service: () => service.state }) },
              rt.logger,
            );
            const tls = await apiTlsMaterial(ca, config.api);
            const certAuth = c.resolve(AuthenticateCertificate);
            const certificatePrincipal = async (req: FastifyRequest): Promise<Principal | undefined> => {
              const peer = (req.raw.socket as TLSSocket).getPeerCertificate?.();
              if (!peer?.raw) return undefined;
              return certAuth.execute(await verifyClientCertificate(ca, peer.raw));
            };
            const app = await buildApiServer({
              config: config.api,
              logger: rt.logger,
              tls: { key: tls.key, cert: tls.cert, ca: tls.ca },
              certificatePrincipal,
              resolve: (cls) => c.resolve(cls),
              authenticateToken: c.resolve(AuthenticateToken),
              version: VERSION,
              health: () => (service.state === 'ok' ? 'ok' : service.state === 'stopping' ? 'stopping' : 'starting'),
            });
            try {
              try {
                await nats.publisher?.start();
                await service.start();
                const address = await app.listen({ host: config.api.host, port: config.api.port });
                if (o.json) printJson({ ready: true, api: address.replace(/^http:/, 'https:'), ...(http ? { http: http.url } : {}) });
                else printLine(`keyhub serve: ready (API on ${address}${http ? `; metrics, healthz, readyz on ${http.url}` : ''})`);
                const signal = await stopped;
                rt.logger.info({ signal }, 'shutting down');
              } finally {
                await app.close();
                await service.stop();
                await nats.publisher?.stop();
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
