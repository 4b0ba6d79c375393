import { api } from '@keyhub/protocol';
import { principalOf } from '../auth/authenticate';
import { ImportKeyCertificate } from '../../operations/keys/import-key-certificate';
import { IssueKeyCertificate } from '../../operations/keys/key-certificate';
import { SignKeyCsr } from '../../operations/keys/key-csr';
import { ShowKeyCertificate } from '../../operations/keys/show-key-certificate';
import { responses, type RouteDeps, type ZodApp } from './index';

/** Certificate chains of key pair versions, for keystores (issue 12): hub CA, or CSR and import. */
export function registerKeyCertificateRoutes(app: ZodApp, { resolve }: RouteDeps): void {
  const path = '/v1/keys/:name/versions/:version/certificate';

  app.get(
    path,
    {
      schema: {
        summary: "a key pair version's certificate chain (PEM, leaf first)",
        tags: ['keys'],
        params: api.keyVersionParams,
        response: responses({ 200: api.keyCertificateView }),
      },
    },
    async (req) => resolve(ShowKeyCertificate).execute(req.params.name, req.params.version),
  );

  app.post(
    path,
    {
      schema: {
        summary: 'a certificate for a key pair version from the hub key-issuing CA, issued if the version has no chain yet (idempotent)',
        tags: ['keys'],
        params: api.keyVersionParams,
        body: api.keyCertificateBody,
        response: responses({ 200: api.keyCertificateView, 201: api.keyCertificateView }),
      },
    },
    async (req, reply) => {
      const view = await resolve(IssueKeyCertificate).execute(req.params.name, req.params.version, req.body, principalOf(req));
      return reply.code(view.created ? 201 : 200).send(view);
    },
  );

  app.put(
    path,
    {
      schema: {
        summary: "a chain from an outside CA for a key pair version: its leaf must certify the version's public key, each certificate signed by the next",
        tags: ['keys'],
        params: api.keyVersionParams,
        body: api.keyCertificateImportBody,
        response: responses({ 200: api.keyCertificateView }),
      },
    },
    async (req) => resolve(ImportKeyCertificate).execute(req.params.name, req.params.version, req.body, principalOf(req)),
  );

  app.post(
    '/v1/keys/:name/versions/:version/csr',
    {
      schema: {
        summary: "a PKCS#10 request for a key pair version, signed in the hub HSM by the version's private key",
        tags: ['keys'],
        params: api.keyVersionParams,
        body: api.keyCsrBody,
        response: responses({ 200: api.keyCsrView }),
      },
    },
    async (req) => resolve(SignKeyCsr).execute(req.params.name, req.params.version, req.body, principalOf(req)),
  );
}
