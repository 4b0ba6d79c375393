/**
 * Helpers for the Java keystore tests: a Java program compiled once with
 * javac that loads every key through KeyStore.getInstance(...).getKey and
 * prints what Java sees, keytool's own listing, certificate chains for key
 * pairs (node-forge for RSA, the OpenSSL CLI for EC, which forge cannot put
 * in a certificate), and the reference KCVs computed outside our writer.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as forge from 'node-forge';

const PROBE = `
import java.io.FileInputStream;
import java.security.*;
import java.security.cert.Certificate;
import java.util.*;
import javax.crypto.*;
import javax.crypto.spec.*;
import java.security.spec.RSAPublicKeySpec;

/** Loads a keystore and prints, per key entry: kind, alias, algorithm, KCV [, chain length, signature, KCV of the RSA public key derived from the private key]. */
public class KeystoreProbe {
  static final byte[] MESSAGE = "keyhub keystore probe".getBytes(java.nio.charset.StandardCharsets.UTF_8);

  public static void main(String[] args) throws Exception {
    char[] password = args[2].toCharArray();
    KeyStore ks = KeyStore.getInstance(args[0]);
    try (FileInputStream in = new FileInputStream(args[1])) { ks.load(in, password); }
    for (String alias : Collections.list(ks.aliases())) {
      Key key = ks.getKey(alias, password);
      if (key instanceof SecretKey) {
        System.out.println("secretKey " + alias + " " + key.getAlgorithm() + " " + kcv((SecretKey) key));
      } else if (key instanceof PrivateKey) {
        Certificate[] chain = ks.getCertificateChain(alias);
        Signature s = Signature.getInstance(key.getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA");
        s.initSign((PrivateKey) key);
        s.update(MESSAGE);
        String spkiKcv = hex(MessageDigest.getInstance("SHA-256").digest(chain[0].getPublicKey().getEncoded())).substring(0, 6);
        // An RSA private key carries its public half: the KCV of the public key Java derives from the loaded key itself.
        String keyKcv = "-";
        if (key instanceof java.security.interfaces.RSAPrivateCrtKey) {
          java.security.interfaces.RSAPrivateCrtKey rsa = (java.security.interfaces.RSAPrivateCrtKey) key;
          PublicKey pub = KeyFactory.getInstance("RSA").generatePublic(new RSAPublicKeySpec(rsa.getModulus(), rsa.getPublicExponent()));
          keyKcv = hex(MessageDigest.getInstance("SHA-256").digest(pub.getEncoded())).substring(0, 6);
        }
        System.out.println("privateKey " + alias + " " + key.getAlgorithm() + " " + spkiKcv + " " + chain.length + " " + Base64.getEncoder().encodeToString(s.sign()) + " " + keyKcv);
      }
    }
  }

  static String kcv(SecretKey key) throws Exception {
    byte[] raw = key.getEncoded();
    String alg = key.getAlgorithm();
    if (alg.equals("AES")) {
      // CMAC of one zero block = E(K1) with K1 = dbl(E(0)) (NIST SP 800-38B); Java has no CMAC.
      Cipher c = Cipher.getInstance("AES/ECB/NoPadding");
      c.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(raw, "AES"));
      byte[] l = c.doFinal(new byte[16]);
      byte[] k1 = new byte[16];
      for (int i = 0; i < 16; i++) k1[i] = (byte) ((l[i] << 1) | (i < 15 ? (l[i + 1] & 0xff) >>> 7 : 0));
      if ((l[0] & 0x80) != 0) k1[15] ^= (byte) 0x87;
      return hex(c.doFinal(k1)).substring(0, 6);
    }
    if (alg.equals("DESede")) {
      Cipher c = Cipher.getInstance("DESede/ECB/NoPadding");
      c.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(raw, "DESede"));
      return hex(c.doFinal(new byte[8])).substring(0, 6);
    }
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(new SecretKeySpec(raw, "HmacSHA256"));
    return hex(mac.doFinal(new byte[16])).substring(0, 6);
  }

  static String hex(byte[] b) {
    StringBuilder sb = new StringBuilder();
    for (byte x : b) sb.append(String.format("%02x", x));
    return sb.toString();
  }
}
`;

export const PROBE_MESSAGE = Buffer.from('keyhub keystore probe', 'utf8');

/** Writes and compiles the probe into `dir` (once per test file); returns the classpath. */
export function compileProbe(dir: string): string {
  fs.writeFileSync(path.join(dir, 'KeystoreProbe.java'), PROBE);
  execFileSync('javac', ['-d', dir, path.join(dir, 'KeystoreProbe.java')], { stdio: 'pipe' });
  return dir;
}

export interface ProbedEntry {
  readonly kind: string;
  readonly alias: string;
  readonly algorithm: string;
  readonly kcv: string;
  readonly chainLength?: number;
  readonly signature?: Buffer;
  /** RSA private keys: the KCV of the public key Java derives from the loaded private key. */
  readonly keyKcv?: string;
}

export function runProbe(classpath: string, javaType: 'PKCS12' | 'JCEKS', file: string, password: string): Map<string, ProbedEntry> {
  const out = execFileSync('java', ['-cp', classpath, 'KeystoreProbe', javaType, file, password], { encoding: 'utf8', stdio: 'pipe' });
  const entries = new Map<string, ProbedEntry>();
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [kind, alias, algorithm, kcv, chain, sig, keyKcv] = line.split(' ');
    entries.set(alias, {
      kind,
      alias,
      algorithm,
      kcv,
      chainLength: chain ? Number(chain) : undefined,
      signature: sig ? Buffer.from(sig, 'base64') : undefined,
      keyKcv: keyKcv && keyKcv !== '-' ? keyKcv : undefined,
    });
  }
  return entries;
}

/** keytool -list -v: alias -> entry type, as Java's own tool reports them. */
export function keytoolList(javaType: 'PKCS12' | 'JCEKS', file: string, password: string): Map<string, string> {
  return new Map([...keytoolEntries(javaType, file, password)].map(([alias, e]) => [alias, e.type]));
}

export interface KeytoolEntry {
  readonly type: string;
  /** "Certificate chain length" of a PrivateKeyEntry. */
  readonly chainLength?: number;
  /** The SHA-256 fingerprints keytool prints for each certificate of the chain, leaf first (hex, lower case, no colons). */
  readonly fingerprints: string[];
}

/** keytool -list -v: each alias with its entry type and, for a private key, its chain as keytool reads it. */
export function keytoolEntries(javaType: 'PKCS12' | 'JCEKS', file: string, password: string): Map<string, KeytoolEntry> {
  const out = execFileSync('keytool', ['-list', '-v', '-storetype', javaType, '-keystore', file, '-storepass', password], { encoding: 'utf8', stdio: 'pipe' });
  const entries = new Map<string, { type: string; chainLength?: number; fingerprints: string[] }>();
  let current: { type: string; chainLength?: number; fingerprints: string[] } | undefined;
  for (const line of out.split('\n')) {
    const name = /^Alias name: (.*)$/.exec(line);
    if (name) entries.set(name[1].trim(), (current = { type: '', fingerprints: [] }));
    const type = /^Entry type: (.*)$/.exec(line);
    if (type && current) current.type = type[1].trim();
    const chain = /^Certificate chain length: (\d+)/.exec(line);
    if (chain && current) current.chainLength = Number(chain[1]);
    const fp = /^\s*SHA256: ([0-9A-F:]+)/.exec(line);
    if (fp && current) current.fingerprints.push(fp[1].replace(/:/g, '').toLowerCase());
  }
  return entries;
}

/** The certificates `openssl pkcs12 -nokeys` reads out of a PKCS#12 file (OpenSSL, not Java, not our writer), as DER. */
export function opensslPkcs12Certificates(file: string, password: string): Buffer[] {
  const out = execFileSync('openssl', ['pkcs12', '-in', file, '-nokeys', '-passin', 'env:KEYHUB_P12_PASSWORD'], {
    encoding: 'utf8',
    stdio: 'pipe',
    env: { ...process.env, KEYHUB_P12_PASSWORD: password },
  });
  return [...out.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
}

/** Reference KCVs, computed without our writer: AES by the OpenSSL CLI's CMAC, TDES and HMAC by node:crypto. */
export function referenceKcv(algorithm: string, key: Buffer, dir: string): string {
  if (algorithm === 'AES') {
    const zero = path.join(dir, 'zero-block');
    fs.writeFileSync(zero, Buffer.alloc(16));
    const out = execFileSync('openssl', ['mac', '-cipher', `AES-${key.length * 8}-CBC`, '-macopt', `hexkey:${key.toString('hex')}`, '-in', zero, 'CMAC'], { encoding: 'utf8' });
    return out.trim().toLowerCase().slice(0, 6);
  }
  if (algorithm === 'DESede') {
    const c = createCipheriv('des-ede3-ecb', key, null).setAutoPadding(false);
    return Buffer.concat([c.update(Buffer.alloc(8)), c.final()])
      .toString('hex')
      .slice(0, 6);
  }
  return createHmac('sha256', key).update(Buffer.alloc(16)).digest('hex').slice(0, 6);
}

const certDer = (cert: forge.pki.Certificate): Buffer => Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
const pem = (key: KeyObject, kind: 'public' | 'private'): string => (kind === 'public' ? key.export({ type: 'spki', format: 'pem' }) : key.export({ type: 'pkcs8', format: 'pem' })).toString();

function forgeCert(subject: string, serial: string, publicKeyPem: string, issuer: forge.pki.Certificate | undefined, signer: forge.pki.rsa.PrivateKey): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = serial;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: subject }]);
  cert.setIssuer(issuer ? issuer.subject.attributes : [{ name: 'commonName', value: subject }]);
  cert.setExtensions([{ name: 'basicConstraints', cA: issuer === undefined }]);
  cert.sign(signer, forge.md.sha256.create());
  return cert;
}

export interface TestKeyPair {
  readonly pkcs8: Buffer;
  readonly publicKey: KeyObject;
  readonly chain: Buffer[];
}

/** A test CA (RSA, self-signed with forge) that issues leaf certificates for RSA keys (forge) and EC keys (OpenSSL CLI). */
export class TestCa {
  private readonly key = generateKeyPairSync('rsa', { modulusLength: 2048 });
  private readonly forgeKey = forge.pki.privateKeyFromPem(pem(this.key.privateKey, 'private')) as forge.pki.rsa.PrivateKey;
  readonly cert = forgeCert('Keyhub Test CA', '01', pem(this.key.publicKey, 'public'), undefined, this.forgeKey);
  private serial = 16;

  constructor(private readonly dir: string) {}

  rsaKeyPair(name: string): TestKeyPair {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const leaf = forgeCert(name, (this.serial++).toString(16), pem(pair.publicKey, 'public'), this.cert, this.forgeKey);
    return { pkcs8: pair.privateKey.export({ type: 'pkcs8', format: 'der' }), publicKey: pair.publicKey, chain: [certDer(leaf), certDer(this.cert)] };
  }

  ecKeyPair(name: string): TestKeyPair {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const file = (n: string): string => path.join(this.dir, `${name}.${n}`);
    fs.writeFileSync(file('key.pem'), pem(pair.privateKey, 'private'), { mode: 0o600 });
    fs.writeFileSync(file('ca.pem'), forge.pki.certificateToPem(this.cert));
    fs.writeFileSync(file('cakey.pem'), pem(this.key.privateKey, 'private'), { mode: 0o600 });
    execFileSync('openssl', ['req', '-new', '-key', file('key.pem'), '-subj', `/CN=${name}`, '-out', file('csr')], { stdio: 'pipe' });
    execFileSync(
      'openssl',
      ['x509', '-req', '-in', file('csr'), '-CA', file('ca.pem'), '-CAkey', file('cakey.pem'), '-set_serial', String(this.serial++), '-days', '2', '-outform', 'DER', '-out', file('der')],
      { stdio: 'pipe' },
    );
    return { pkcs8: pair.privateKey.export({ type: 'pkcs8', format: 'der' }), publicKey: pair.publicKey, chain: [fs.readFileSync(file('der')), certDer(this.cert)] };
  }
}
