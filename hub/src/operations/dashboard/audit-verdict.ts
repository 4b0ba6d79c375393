import { createHash, type Hash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { verifyAuditChain, type AuditVerification, type StoredAuditEvent, type StoredCheckpoint } from '../../audit/verify-audit';
import { readCheckpoints } from '../../store/queries/audit';
import { auditRowsOnly, auditRowsText, type AuditRowText } from '../../store/queries/dashboard';

const PAGE = 5000;

/**
 * What this process verified last, per database: the head it reached, and
 * SHA-256 digests of the stored rows it verified (events 1..seq in
 * PostgreSQL's record text form, checkpoints up to seq as read). Held in memory only: nothing read from the
 * database can vouch for itself.
 */
interface VerifiedPrefix {
  key: string;
  seq: number;
  hash: string;
  events: string;
  checkpoints: string;
}

const verified = new WeakMap<DataSource, VerifiedPrefix>();

/** The rows' record texts as one string, each prefixed by its length. */
function rowText(rows: Array<Pick<AuditRowText, 'row'>>): string {
  let out = '';
  for (const r of rows) out += `${r.row.length}:${r.row}`;
  return out;
}

function checkpointDigest(checkpoints: StoredCheckpoint[], upTo: number): string {
  return createHash('sha256')
    .update(JSON.stringify(checkpoints.filter((c) => c.seq <= upTo).sort((a, b) => a.seq - b.seq)))
    .digest('hex');
}

function parse(r: AuditRowText): StoredAuditEvent {
  return {
    seq: Number(r.seq),
    at: new Date(Number(r.ms)),
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    details: JSON.parse(r.details) as StoredAuditEvent['details'],
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** The chain after `after`, page by page, each page added to `digest` as it is read and handed on parsed. */
async function* eventsAfter(ds: DataSource, after: number, digest: Hash): AsyncGenerator<StoredAuditEvent> {
  let from = after;
  for (;;) {
    const rows = await auditRowsText(ds, from, PAGE);
    digest.update(rowText(rows));
    for (const r of rows) yield parse(r);
    if (rows.length < PAGE) return;
    from = Number(rows[rows.length - 1].seq);
  }
}

/**
 * The dashboard's audit verdict: the stored chain verified against the hub
 * signing key, as VerifyStoredAudit does, at the cost of reading the rows
 * rather than re-hashing them all on every view. Rule: the events this
 * process verified before are re-read every time, as text, and only when
 * they (and the checkpoints up to them) are byte for byte what it verified
 * does the verification go on from the head it reached (verifyAuditChain
 * with `resume`); any difference, a rewrite or a removal anywhere, means a
 * verification from the first event, which names the first bad one. The
 * memory is per process and per database, and only a verification that
 * passed is remembered.
 */
export async function verifyAuditForDashboard(ds: DataSource, trustedKey: Buffer): Promise<AuditVerification> {
  const key = trustedKey.toString('hex');
  const checkpoints = await readCheckpoints(ds);
  const known = verified.get(ds);
  let digest = createHash('sha256');
  let resume: { seq: number; hash: string } | undefined;
  if (known && known.key === key && checkpointDigest(checkpoints, known.seq) === known.checkpoints) {
    // Events 1..known.seq as they are stored now (a removed one leaves this short), the next page read while this one is digested.
    let last = 0;
    const page = (after: number): { want: number; rows: Promise<Array<Pick<AuditRowText, 'seq' | 'row'>>> } => {
      const want = Math.min(PAGE, known.seq - after);
      return { want, rows: auditRowsOnly(ds, after, want) };
    };
    let next: ReturnType<typeof page> | undefined = known.seq > 0 ? page(0) : undefined;
    while (next) {
      const { want, rows: pending } = next;
      const rows = await pending;
      if (rows.length) last = Number(rows[rows.length - 1].seq);
      next = rows.length === want && last < known.seq ? page(last) : undefined;
      digest.update(rowText(rows));
    }
    if (last === known.seq && digest.copy().digest('hex') === known.events) resume = { seq: known.seq, hash: known.hash };
    else digest = createHash('sha256');
  }
  const result = await verifyAuditChain(eventsAfter(ds, resume?.seq ?? 0, digest), checkpoints, trustedKey, resume ? { resume } : {});
  if (result.ok && result.head) {
    verified.set(ds, { key, seq: result.head.seq, hash: result.head.hash, events: digest.digest('hex'), checkpoints: checkpointDigest(checkpoints, result.head.seq) });
  } else {
    verified.delete(ds);
  }
  return result;
}
