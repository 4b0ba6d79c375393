/**
 * How a matrix cell (one key at one site, over that site's targets) is
 * summed up in one state: the one that most needs a person's attention
 * wins, so a single failed target is never hidden behind confirmed ones.
 * Pure, so the rule is unit-testable.
 */
export const CELL_STATE_ORDER = ['failed', 'queued', 'sent', 'confirmed', 'superseded', 'destroyed'] as const;

export interface MatrixCell {
  version: number;
  /** The state that needs the most attention among the targets. */
  state: string;
  /** Targets per state, e.g. { confirmed: 2, failed: 1 }. */
  counts: Record<string, number>;
}

function rank(state: string): number {
  const i = (CELL_STATE_ORDER as readonly string[]).indexOf(state);
  // A state this table does not know yet ranks first: shown rather than hidden.
  return i === -1 ? -1 : i;
}

export function summarizeCell(version: number, counts: Record<string, number>): MatrixCell {
  const states = Object.keys(counts).filter((s) => counts[s] > 0);
  states.sort((a, b) => rank(a) - rank(b));
  return { version, state: states[0] ?? 'none', counts };
}
