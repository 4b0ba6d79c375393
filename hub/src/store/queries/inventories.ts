import type { Queryable } from './queryable';

export interface InventoryPartRow {
  listenerId: string;
  reportId: string;
  part: number;
  of: number;
  takenAt: Date;
  targets: string[];
}

export interface InventoryItemRow {
  target: string;
  objectId: string;
  keyId: string | null;
  version: number | null;
  label: string;
  kcv: string | null;
  state: string;
}

/** The listener's state and its current inventory, the listener row locked: parts of one listener are taken one at a time. */
export async function lockListenerInventory(m: Queryable, listenerId: string): Promise<{ state: string; report_id: string | null; taken_at: Date | null } | undefined> {
  const [row] = await m.query(`SELECT l.state, i.report_id, i.taken_at FROM listeners l LEFT JOIN listener_inventories i ON i.listener_id = l.id WHERE l.id = $1 FOR UPDATE OF l`, [listenerId]);
  return row;
}

/** Stores a part; false when that part of that report was stored already (a redelivery). */
export async function insertInventoryPart(m: Queryable, p: InventoryPartRow): Promise<boolean> {
  const rows: unknown[] = await m.query(
    `INSERT INTO inventory_parts (listener_id, report_id, part, of, taken_at, targets) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT DO NOTHING RETURNING 1`,
    [p.listenerId, p.reportId, p.part, p.of, p.takenAt, p.targets],
  );
  return rows.length === 1;
}

export async function insertInventoryItems(m: Queryable, listenerId: string, reportId: string, items: InventoryItemRow[]): Promise<void> {
  if (items.length === 0) return;
  await m.query(
    `INSERT INTO inventory_items (listener_id, report_id, target, object_id, key_id, version, label, kcv, state)
          SELECT $1, $2, u.target, u.object_id, u.key_id, u.version, u.label, u.kcv, u.state
            FROM unnest($3::text[], $4::text[], $5::uuid[], $6::int[], $7::text[], $8::text[], $9::text[]) AS u(target, object_id, key_id, version, label, kcv, state)`,
    [
      listenerId,
      reportId,
      items.map((i) => i.target),
      items.map((i) => i.objectId),
      items.map((i) => i.keyId),
      items.map((i) => i.version),
      items.map((i) => i.label),
      items.map((i) => i.kcv),
      items.map((i) => i.state),
    ],
  );
}

/** Parts of a report received so far, and how many it has (parts disagreeing on `of` count as incomplete). */
export async function reportProgress(m: Queryable, listenerId: string, reportId: string): Promise<{ received: number; of: number; consistent: boolean }> {
  const [row]: Array<{ received: number; of: number; kinds: number }> = await m.query(
    `SELECT count(*)::int AS received, max(of)::int AS of, count(DISTINCT of)::int AS kinds FROM inventory_parts WHERE listener_id = $1 AND report_id = $2`,
    [listenerId, reportId],
  );
  return { received: row.received, of: row.of, consistent: row.kinds === 1 };
}

/**
 * A complete report becomes the listener's inventory: the pointer moves,
 * and the items and parts of every other report of the listener go.
 */
export async function promoteReport(m: Queryable, p: { listenerId: string; reportId: string; takenAt: Date; targets: string[] }): Promise<number> {
  const [{ n }]: Array<{ n: number }> = await m.query('SELECT count(*)::int AS n FROM inventory_items WHERE listener_id = $1 AND report_id = $2', [p.listenerId, p.reportId]);
  await m.query(
    `INSERT INTO listener_inventories (listener_id, report_id, taken_at, targets, items, completed_at) VALUES ($1, $2, $3, $4, $5, now())
       ON CONFLICT (listener_id) DO UPDATE SET report_id = EXCLUDED.report_id, taken_at = EXCLUDED.taken_at, targets = EXCLUDED.targets, items = EXCLUDED.items, completed_at = now()`,
    [p.listenerId, p.reportId, p.takenAt, p.targets, n],
  );
  // A newer report still arriving keeps its parts and items.
  await m.query(
    `DELETE FROM inventory_items WHERE listener_id = $1 AND report_id <> $2
        AND report_id NOT IN (SELECT report_id FROM inventory_parts WHERE listener_id = $1 AND taken_at > $3)`,
    [p.listenerId, p.reportId, p.takenAt],
  );
  await m.query('DELETE FROM inventory_parts WHERE listener_id = $1 AND taken_at <= $2', [p.listenerId, p.takenAt]);
  return n;
}

/** Parts of reports older than `takenAt` that never completed: dropped when a newer one completes or arrives. */
export async function dropStaleParts(m: Queryable, listenerId: string, takenAt: Date): Promise<void> {
  await m.query(
    `DELETE FROM inventory_items i USING inventory_parts p
      WHERE p.listener_id = $1 AND p.taken_at < $2 AND i.listener_id = p.listener_id AND i.report_id = p.report_id
        AND NOT EXISTS (SELECT 1 FROM listener_inventories c WHERE c.report_id = i.report_id)`,
    [listenerId, takenAt],
  );
  await m.query('DELETE FROM inventory_parts WHERE listener_id = $1 AND taken_at < $2', [listenerId, takenAt]);
}

/** taken_at of the newest report of the listener still arriving, other than `reportId` (null when none is). */
export async function newestPendingReport(m: Queryable, listenerId: string, reportId: string): Promise<Date | null> {
  const [row]: Array<{ at: Date | null }> = await m.query('SELECT max(taken_at) AS at FROM inventory_parts WHERE listener_id = $1 AND report_id <> $2', [listenerId, reportId]);
  return row?.at ?? null;
}

export async function inventorySummaries(m: Queryable, listenerId?: string): Promise<Array<{ listener_id: string; taken_at: Date; items: number }>> {
  return m.query(`SELECT listener_id, taken_at, items FROM listener_inventories WHERE $1::text IS NULL OR listener_id = $1 ORDER BY listener_id`, [listenerId ?? null]);
}
