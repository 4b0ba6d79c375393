import { generateKeyPairSync } from 'node:crypto';
import type { HubCa } from './hub-ca';

/** Ready for Node's `https.createServer` / fastify's `https` option as they are. */
export interface ServerTlsMaterial {
  /** PKCS#8 PEM of the server's private key. */
  key: string;
  /** Leaf then TLS issuing CA, so clients need only the root. */
  cert: string;
  /** The root to pin, also what client certificates are checked against when requested. */
  ca: string;
  serial: string;
  notAfter: Date;
}

/**
 * Key and certificate for the hub's HTTPS API. The TLS key is made in memory
 * with node:crypto, not in the HSM: Node's TLS stack (OpenSSL without a
 * PKCS#11 engine) can only use a private key it holds itself. It is a
 * short-lived key that protects sessions only (a new one per process start,
 * 90-day certificate); the long-lived CA keys that vouch for it stay in the
 * token.
 */
export async function serverTlsMaterial(ca: HubCa, names: { hostnames?: string[]; ips?: string[]; validityDays?: number; actor?: string }): Promise<ServerTlsMaterial> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issued = await ca.issueTlsServerCertificate(publicKey.export({ type: 'spki', format: 'der' }), {
    dnsNames: names.hostnames,
    ipAddresses: names.ips,
    validityDays: names.validityDays,
    actor: names.actor ?? 'keyhub-serve',
  });
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: issued.chainPem,
    ca: issued.rootPem,
    serial: issued.serial,
    notAfter: issued.notAfter,
  };
}
