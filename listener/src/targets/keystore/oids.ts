/** Object identifiers of PKCS#5, PKCS#9, PKCS#12 and the key algorithms as Java names them. */
export const OID = {
  data: '1.2.840.113549.1.7.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  secretBag: '1.2.840.113549.1.12.10.1.5',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  /** Java's PBEWithMD5AndTripleDES private-key protection in JCEKS (KnownOIDs.JAVASOFT_JCEKeyProtector). */
  jceKeyProtector: '1.3.6.1.4.1.42.2.19.1',
} as const;

/** The OID Java's AlgorithmId gives each secret-key algorithm, the ones keytool writes into a PKCS#12 SecretBag. */
export const SECRET_KEY_OIDS = {
  AES: '2.16.840.1.101.3.4.1',
  DESede: '1.3.14.3.2.17',
  HmacSHA1: '1.2.840.113549.2.7',
  HmacSHA256: '1.2.840.113549.2.9',
  HmacSHA384: '1.2.840.113549.2.10',
  HmacSHA512: '1.2.840.113549.2.11',
} as const;
