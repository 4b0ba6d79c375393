import { strict as assert } from 'node:assert';
import { KeyhubError } from '@keyhub/shared';
import type { CloudImportResult } from '@keyhub/listener/dist/targets/cloud/importer';
import type { FaultPlan } from '../fixtures/cloud/http-standin';

/**
 * The retry contract every cloud importer shares, against its stand-in: two
 * injected 5xx are retried away (the import succeeds, both faults consumed);
 * a persisting 5xx is CLOUD_UNAVAILABLE and retryable; a token the cloud
 * refuses is CLOUD_REQUEST_REJECTED and not retryable.
 */
export async function checkRetryContract(opts: {
  faults: FaultPlan;
  /** A fresh import with good credentials. */
  importOne: () => Promise<CloudImportResult>;
  /** A fresh import with a token the stand-in refuses. */
  importWithBadToken: () => Promise<CloudImportResult>;
  enabledState: string;
}): Promise<void> {
  const { faults } = opts;
  faults.serverErrors = 2;
  assert.equal((await opts.importOne()).importState, opts.enabledState);
  assert.equal(faults.serverErrors, 0, 'both injected 5xx were met and retried');
  faults.serverErrors = 100;
  try {
    await assert.rejects(opts.importOne(), (e: unknown) => KeyhubError.is(e, 'CLOUD_UNAVAILABLE') && e.retryable);
  } finally {
    faults.serverErrors = 0;
  }
  await assert.rejects(opts.importWithBadToken(), (e: unknown) => KeyhubError.is(e, 'CLOUD_REQUEST_REJECTED') && !e.retryable);
}
