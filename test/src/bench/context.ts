import type { Cleanup, StageRecorder } from './lib';

/** Bare limits measured in this run, used by later stages for their ratios. */
export interface BareLimits {
  /** Sequential wrap+sign pairs per second with 4 concurrent callers: the bare HSM limit per package. */
  wrapSignPerPackage4?: number;
  /** JetStream publish-with-ack per second, 256 in flight. */
  jetStreamPublish256?: number;
  /** C_UnwrapKey into a token object per second on a separate target token, sequential. */
  tokenImport?: number;
}

export interface BenchContext {
  limits: BareLimits;
  /** Resident set size readings of this process (MB) at named points. */
  rss: Record<string, number>;
}

export interface StageRun {
  rec: StageRecorder;
  cleanup: Cleanup;
  ctx: BenchContext;
}
