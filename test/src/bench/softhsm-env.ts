import type { SoftHsmEnv } from '../env';

/**
 * Points this process's PKCS#11 module at a SoftHSM environment and puts the
 * PINs of its tokens into environment variables (pinEnv of the Hsm config).
 * SoftHSM reads SOFTHSM2_CONF in C_Initialize, which the adapter runs when
 * the first token of a stage opens (and finalizes when the last closes), so
 * each stage may use its own token directory. Returns the restore function.
 */
export function useSoftHsm(soft: SoftHsmEnv, pins: Record<string, string>): () => void {
  const saved = new Map<string, string | undefined>();
  const set = (name: string, value: string): void => {
    if (!saved.has(name)) saved.set(name, process.env[name]);
    process.env[name] = value;
  };
  set('SOFTHSM2_CONF', soft.confPath);
  for (const [envVar, label] of Object.entries(pins)) {
    const token = soft.tokens.find((t) => t.label === label);
    if (!token) throw new Error(`no SoftHSM token ${label}`);
    set(envVar, token.pin);
  }
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}
