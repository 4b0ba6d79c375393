import { api } from '@keyhub/protocol';

/*
 * Secrets that must never reach a log line or a terminal, recognised by
 * their shape wherever they appear in a text (a message, an error, a field
 * value, a whole JSON log line). Field-name censoring in the logger is the
 * second line of defence, this is the third: the first is that code never
 * logs them.
 */

const BLOCK_LABEL_SECRET = /PRIVATE|SEED|JWT|SECRET|CREDENTIAL/;

const PATTERNS: Array<[RegExp, string | ((match: string, ...groups: string[]) => string)]> = [
  // PEM and NATS creds blocks: "-----BEGIN USER NKEY SEED-----", "-----BEGIN NATS USER JWT-----", private keys.
  [/-{3,}\s*BEGIN ([A-Z0-9 ]{1,40}?)\s*-{3,}[\s\S]*?-{3,}\s*END [A-Z0-9 ]{1,40}?\s*-{3,}/g, (m: string, label: string) => (BLOCK_LABEL_SECRET.test(label) ? `[redacted ${label.toLowerCase()}]` : m)],
  // Credentials in URLs: scheme://user:password@host, or scheme://token@host. The whole user-info goes.
  [/\b([a-z][a-z0-9+.-]{0,31}:\/\/)[^\s/@"'<>]+@/gi, '$1[redacted]@'],
  // Keyhub API tokens (khub_<32 hex>_<43 base64url>).
  [new RegExp(api.TOKEN_LIKE.source, 'g'), '[redacted token]'],
  // NKEY seeds: "S" + type (user, account, operator, server, cluster, curve...) + 56 base32 characters.
  [/\bS[UAONCPX][A-Z2-7]{56}\b/g, '[redacted seed]'],
  // JWTs (NATS user JWTs among them), three base64url parts.
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,1024}/g, '[redacted jwt]'],
  // Authorization headers.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, '$1 [redacted]'],
  // key=value secrets in connection strings and command lines.
  [/\b(password|passwd|pwd|pin|so-?pin|token|seed)=([^\s&;"',]+)/gi, '$1=[redacted]'],
];

/** The text with every secret-shaped part replaced by a marker. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [re, replacement] of PATTERNS) {
    re.lastIndex = 0;
    out = typeof replacement === 'string' ? out.replace(re, replacement) : out.replace(re, replacement as (m: string, ...g: string[]) => string);
  }
  return out;
}

/*
 * Control characters (C0, DEL, C1) would let a string chosen by someone else
 * (a hostname in an enrollment, a token label, a target name) move the
 * cursor, rewrite what the operator reads, or send the terminal escape
 * sequences; bidirectional overrides reorder what is shown. Each is printed
 * as a visible escape instead.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_FOR_TERMINAL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** Text safe to print to a terminal: control and bidi characters escaped (`\x1b`, `\u202e`), backslashes doubled. */
export function terminalSafe(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(UNSAFE_FOR_TERMINAL, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
