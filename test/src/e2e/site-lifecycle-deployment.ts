import { Deployment } from '../harness/deployment';

/**
 * One deployment (nats-server with auth, PostgreSQL, SoftHSM2 tokens, a
 * running hub) shared by the site lifecycle end-to-end files
 * (root-kek-rotation.test.ts, decommission.test.ts): each enrolls its own
 * sites, so they do not meet, and the setup is paid once per run. Removed by
 * a root `after` hook, once every file that used it has finished.
 */
export const SITE_LIFECYCLE_SITES = ['site-a', 'site-b', 'site-c', 'site-d'] as const;

let shared: Promise<Deployment> | undefined;

export function siteLifecycleDeployment(): Promise<Deployment> {
  if (!shared) {
    shared = (async () => {
      const d = await Deployment.create([...SITE_LIFECYCLE_SITES]);
      try {
        await d.initHub();
        await d.startHub();
      } catch (err) {
        await d.cleanup();
        throw err;
      }
      return d;
    })();
  }
  return shared;
}

// A root hook (registered while the test files load): runs after every suite of the run.
after(async function () {
  this.timeout(60_000);
  if (!shared) return;
  const d = await shared.catch(() => undefined);
  shared = undefined;
  await d?.cleanup();
});
