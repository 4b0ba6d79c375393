import type { EntityManager } from 'typeorm';
import { subjects } from '@keyhub/protocol';
import { notifyOutbox } from './outbox';

/** A signed key package as it is stored: its row in `packages` and its message in the outbox. */
export interface PackageRow {
  packageId: string;
  distributionId: string;
  listenerId: string;
  sequence: number;
  bytes: Buffer;
}

/**
 * Writes packages and their outbox rows in the caller's transaction, in one
 * statement; the relay is woken at commit. The parameters are shaped for a
 * hot path: ids as one comma-separated string, the signed envelopes as one
 * binary buffer cut up by offsets in SQL (a bytea array would travel as hex
 * text, twice the size, escaped element by element), and the times, which
 * are the same for the whole batch, as scalars. Each package row keeps the
 * SHA-256 of its envelope bytes (hashed here from the very bytes the outbox
 * publishes): receipts must name it to be applied.
 */
export async function insertPackagesWithOutbox(m: EntityManager, rows: PackageRow[], issuedAt: Date, expiresAt: Date): Promise<void> {
  const offsets: number[] = [];
  const lengths: number[] = [];
  let at = 1;
  for (const b of rows) {
    offsets.push(at);
    lengths.push(b.bytes.length);
    at += b.bytes.length;
  }
  await m.query(
    `WITH u AS (SELECT * FROM unnest(string_to_array($1, ',')::uuid[], string_to_array($2, ',')::uuid[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::int[])
                 AS u(id, distribution_id, listener_id, sequence, subject, off, len)),
          p AS (INSERT INTO packages (id, distribution_id, listener_id, sequence, issued_at, expires_at, envelope_sha256)
                SELECT id, distribution_id, listener_id, sequence, $8, $9, sha256(substring($10::bytea FROM off FOR len)) FROM u)
     INSERT INTO outbox (subject, msg_id, payload, distribution_id)
     SELECT subject, id::text, substring($10::bytea FROM off FOR len), distribution_id FROM u`,
    [
      rows.map((b) => b.packageId).join(','),
      rows.map((b) => b.distributionId).join(','),
      rows.map((b) => b.listenerId),
      rows.map((b) => b.sequence),
      rows.map((b) => subjects.toListener(b.listenerId, 'package')),
      offsets,
      lengths,
      issuedAt,
      expiresAt,
      Buffer.concat(rows.map((b) => b.bytes)),
    ],
  );
  await notifyOutbox(m);
}
