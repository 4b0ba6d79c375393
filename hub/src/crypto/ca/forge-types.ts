import type * as forge from 'node-forge';

/**
 * Typings for node-forge functions that @types/node-forge leaves out. Both
 * are public in node-forge 1.x (lib/x509.js, lib/asn1.js); the certificate
 * code needs them because forge's own certificate object handles RSA only.
 */
declare module 'node-forge' {
  // Augmenting forge's own namespaces is the only way to add to its typings.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace pki {
    /** The `[3] EXPLICIT Extensions` of a TBSCertificate, from extensions whose `value` is filled in. */
    function certificateExtensionsToAsn1(extensions: ReadonlyArray<FilledExtension>): asn1.Asn1;

    interface FilledExtension {
      id: string;
      critical?: boolean;
      value: asn1.Asn1 | string;
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace asn1 {
    interface FromDerOptions {
      strict?: boolean;
      parseAllBytes?: boolean;
      /** Off keeps BIT STRING contents as bytes (a public key or a signature), never re-parsed as ASN.1. */
      decodeBitStrings?: boolean;
    }
    function fromDer(bytes: Bytes | util.ByteBuffer, options: FromDerOptions): Asn1;
  }
}

export type FilledExtension = forge.pki.FilledExtension;
