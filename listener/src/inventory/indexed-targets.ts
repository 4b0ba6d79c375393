import { objectId } from '../targets/pkcs11-target';
import type { ImportRequest, KeyRef, Target } from '../targets/target';
import type { InventoryIndex } from './inventory-index';

/**
 * The targets as the inbox and the command handler see them, with the
 * inventory index kept up to date on the way: a successful import records
 * the KCV the target verified and the usages granted, a destroy forgets the
 * object. Every other call goes to the target unchanged (a Proxy, so
 * methods added to Target later pass through without being listed here).
 */
export function indexTargets(targets: Map<string, Target>, index: InventoryIndex): Map<string, Target> {
  const out = new Map<string, Target>();
  for (const [name, target] of targets) {
    const wrapped = new Proxy(target, {
      get(t, prop, receiver) {
        if (prop === 'import') {
          return async (req: ImportRequest) => {
            const r = await t.import(req);
            index.record({ target: t.name, objectId: objectId({ keyId: req.key.id, version: req.key.version }).toString('hex'), kcv: r.kcv, usages: [...req.key.usages] });
            return r;
          };
        }
        if (prop === 'destroy') {
          return async (ref: KeyRef) => {
            const r = await t.destroy(ref);
            index.remove(t.name, objectId(ref).toString('hex'));
            return r;
          };
        }
        const v: unknown = Reflect.get(t, prop, receiver);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    out.set(name, wrapped);
  }
  return out;
}
