import { KeyhubError } from '@keyhub/shared';

/** Operator-set labels of a listener (`env=prod`, `region=eu`). */
export type Labels = Readonly<Record<string, string>>;

/**
 * A selector matches a listener that carries every one of its labels with
 * the same value (equality only, like a Kubernetes matchLabels). An empty
 * selector would match every site: it is refused where a policy is made, so
 * "everything" is never reached by accident.
 */
export function matchesSelector(labels: Labels, selector: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => Object.prototype.hasOwnProperty.call(labels, k) && labels[k] === v);
}

/**
 * The labels after a change: `set` adds or overwrites, `remove` drops. A key
 * both set and removed in one change is refused (which one would win is
 * not obvious to the person typing it).
 */
export function applyLabelChange(current: Labels, change: { set?: Labels; remove?: readonly string[] }): Record<string, string> {
  const set = change.set ?? {};
  const remove = change.remove ?? [];
  const both = remove.find((k) => Object.prototype.hasOwnProperty.call(set, k));
  if (both !== undefined) throw new KeyhubError('INPUT_INVALID', `label "${both}" is both set and removed`);
  const next: Record<string, string> = { ...current, ...set };
  for (const k of remove) delete next[k];
  return next;
}

/** The labels that changed value (added, changed or removed) between two sets: what the audit event names. */
export function labelDelta(before: Labels, after: Labels): { set: Record<string, string>; removed: string[] } {
  const set: Record<string, string> = {};
  for (const [k, v] of Object.entries(after)) if (before[k] !== v) set[k] = v;
  const removed = Object.keys(before).filter((k) => !Object.prototype.hasOwnProperty.call(after, k));
  return { set, removed };
}
