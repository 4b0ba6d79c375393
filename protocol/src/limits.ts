/** Size limits enforced before and during parsing; generous for real traffic, tight for abuse. */
export const LIMITS = {
  /** Whole message on the wire (envelope included). */
  maxMessageBytes: 64 * 1024,
  /** A wrapped key blob, base64 (an RSA-4096 PKCS#8 under KWP is about 2.4 KiB raw). */
  maxBlobChars: 8192,
  /** A DER SubjectPublicKeyInfo, base64 (RSA-4096 is about 550 bytes raw). */
  maxSpkiChars: 2048,
  /** One DER certificate of a key pair's chain, base64 (a hub CA leaf is ~0.7 KiB, an outside CA's RSA-4096 one ~2 KiB). */
  maxCertificateChars: 6144,
  /** Certificates in a key pair's chain (leaf, intermediates, root): bounded so a package stays far under maxMessageBytes. */
  maxChainCertificates: 5,
  maxNameChars: 128,
  maxTextChars: 1024,
  maxTargets: 64,
  maxUsages: 8,
} as const;
