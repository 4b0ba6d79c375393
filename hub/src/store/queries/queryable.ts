import type { EntityManager } from 'typeorm';

/**
 * Anything that runs SQL: the DataSource (a pooled connection per call) or a
 * transaction's EntityManager. A query function takes the latter when its
 * statement must run inside the caller's transaction.
 */
export type Queryable = Pick<EntityManager, 'query'>;
