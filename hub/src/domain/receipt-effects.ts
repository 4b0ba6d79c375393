import type { Receipt } from '@keyhub/protocol';
import { isSettled } from './distribution-state';
import { hasAttemptsLeft } from './resend-backoff';

export type ReceiptEffect = 'confirmed' | 'duplicate' | 'kcv_mismatch' | 'reissued' | 'failed' | 'ignored' | 'terminal' | 'package_mismatch';

/**
 * Codes after which the hub can succeed by issuing a fresh package (new
 * sequence number and expiry) rather than by anyone changing anything.
 */
export const REISSUE_CODES: ReadonlySet<string> = new Set(['PACKAGE_EXPIRED', 'PACKAGE_REPLAYED', 'TARGET_IMPORT_FAILED']);

/**
 * Failures that no receipt may undo: a target that holds a key whose KCV is
 * not the version's is a fact about that site an operator has to look at
 * (wrong key material, a tampered token, a bug). Nothing re-issues such a
 * distribution automatically, nor does a later receipt revive or confirm it;
 * only an operator's distribute of the same key to the same target queues it
 * again (domain/distribution-state.ts, distributeAction: failed -> requeue).
 */
export const TERMINAL_CODES: ReadonlySet<string> = new Set(['KCV_MISMATCH']);

/**
 * Whether a receipt answers the package the hub signed under that id: the
 * hash it names must equal the hash the hub kept of the envelope it
 * published. A package without a kept hash (issued before hashes were kept)
 * matches nothing: such a receipt is refused and the re-send timer issues a
 * fresh package.
 */
export function receiptMatchesPackage(receiptSha256: string, storedSha256: Buffer | null): boolean {
  return storedSha256 !== null && storedSha256.length === 32 && storedSha256.toString('hex') === receiptSha256;
}

/** Where a distribution ends up after the receipts of one batch. */
export type FinalState = { state: 'confirmed'; targetKcv: string } | { state: 'failed'; code: string; detail: string; targetKcv?: string | null } | { state: 'queued'; code: string; detail: string };

/** A distribution's state as the receipts of one batch change it, in arrival order. */
export interface DistributionInBatch {
  state: string;
  lastPackageId: string | null;
  attempts: number;
  /** The stored error code of a failed distribution (set here when a receipt fails it). */
  errorCode?: string | null;
  final?: FinalState;
}

/** What of a receipt decides its effect. */
export type ReceiptFacts = Pick<Receipt, 'packageId' | 'outcome' | 'kcv' | 'error'>;

/**
 * The effect of one receipt on its distribution, which it updates in place
 * (receipts of one batch apply in arrival order, each seeing the ones before).
 * A distribution is confirmed only when the KCV computed at the target equals
 * the key version's KCV; a receipt for a settled distribution, or about an
 * older package of it, changes nothing; a failure that a fresh package can
 * cure queues it again while attempts are left; a KCV mismatch is terminal
 * (TERMINAL_CODES). The caller has checked that the receipt names the
 * package's hash (receiptMatchesPackage).
 */
export function applyReceiptEffect(d: DistributionInBatch, receipt: ReceiptFacts, versionKcv: string, maxAttempts: number): ReceiptEffect {
  if (isSettled(d.state)) return 'duplicate';
  if (d.state === 'failed' && d.errorCode && TERMINAL_CODES.has(d.errorCode)) return 'terminal';
  if (receipt.outcome === 'imported' || receipt.outcome === 'already_present') {
    if (receipt.kcv === versionKcv) {
      d.state = 'confirmed';
      d.final = { state: 'confirmed', targetKcv: receipt.kcv };
      return 'confirmed';
    }
    d.state = 'failed';
    d.errorCode = 'KCV_MISMATCH';
    d.final = { state: 'failed', code: 'KCV_MISMATCH', detail: 'target reported a different KCV', targetKcv: receipt.kcv ?? null };
    return 'kcv_mismatch';
  }
  if (receipt.outcome !== 'failed' && receipt.outcome !== 'rejected') return 'ignored';
  // A receipt about an older package of this distribution says nothing about the current one.
  if (d.lastPackageId !== receipt.packageId) return 'duplicate';
  const code = receipt.error?.code ?? 'INTERNAL';
  const detail = receipt.error?.detail ?? receipt.outcome;
  if (REISSUE_CODES.has(code) && hasAttemptsLeft(d.attempts, maxAttempts)) {
    d.state = 'queued';
    // Its package is replaced: later receipts about the old one are duplicates.
    d.lastPackageId = null;
    d.final = { state: 'queued', code, detail };
    return 'reissued';
  }
  d.state = 'failed';
  if (TERMINAL_CODES.has(code)) d.errorCode = code;
  d.final = { state: 'failed', code, detail };
  return 'failed';
}
