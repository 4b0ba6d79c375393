import type { Cleanup, StageRecorder } from './lib';

/** Bare limits measured in this run, used by later stages for their ratios. */
export interface BareLimits {
  /** Wrap+sign pairs per second, the fastest way measured (async calls on 4 sessions, or synchronous calls on 1 or 2 threads): the bare HSM limit per package. */
  wrapSignPerPackage?: number;
  /** How that limit was reached. */
  wrapSignHow?: string;
  /** Wrap+sign pairs per second with 4 async callers on 4 sessions (the limit used up to session 3; a reference). */
  wrapSignAsync4?: number;
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
