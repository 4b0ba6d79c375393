import { AckPolicy, DeliverPolicy, DiscardPolicy, nanos, RetentionPolicy, StorageType, type ConsumerConfig, type StreamConfig } from 'nats';
import { LISTENER_ID_PATTERN, STREAMS, subjects } from '@keyhub/protocol';
import { enrollmentConsumer } from './permissions';

/**
 * What Keyhub's streams and consumers must look like, and how a stored one
 * differs. The hub checks at every start: a difference it can change back
 * (limits, subjects, max_deliver, a republish rule) is repaired with an
 * update; one the server cannot change (storage, retention, a mirror, a
 * push consumer's delivery subject, a filter) makes the hub refuse to start
 * (BUS_CONFIG_TAMPERED), since someone with more than Keyhub's rights on
 * NATS changed it and the operator must look.
 */
export interface Drift {
  field: string;
  expected: unknown;
  actual: unknown;
  /** The server can change it back with an update. */
  repairable: boolean;
}

export function expectedStream(which: 'down' | 'up', replicas: number): StreamConfig {
  const s = STREAMS[which];
  return {
    name: s.name,
    subjects: [...s.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    duplicate_window: nanos(2 * 60_000),
    max_age: nanos(30 * 24 * 3600_000),
    max_msg_size: 64 * 1024 + 1024,
    max_msgs: -1,
    max_bytes: -1,
    max_msgs_per_subject: -1,
    max_consumers: -1,
    sealed: false,
    deny_delete: false,
    deny_purge: false,
    allow_rollup_hdrs: false,
    allow_direct: false,
    mirror_direct: false,
    no_ack: false,
  } as StreamConfig;
}

// 2.9 refuses to change republish (and sources of a mirror) by update: such a stream was made that way, and is refused.
const STREAM_IMMUTABLE = new Set(['name', 'storage', 'retention', 'mirror', 'sealed', 'republish']);
/** Absent means "none" for these; any value is drift. */
const STREAM_MUST_BE_ABSENT = ['mirror', 'sources', 'republish', 'subject_transform'];

export function streamDrift(expected: StreamConfig, actual: Partial<StreamConfig>): Drift[] {
  const out: Drift[] = [];
  const a = actual as Record<string, unknown>;
  for (const [field, want] of Object.entries(expected)) {
    if (!same(want, a[field], field === 'subjects')) out.push({ field, expected: want, actual: a[field], repairable: !STREAM_IMMUTABLE.has(field) });
  }
  for (const field of STREAM_MUST_BE_ABSENT) {
    const v = a[field];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) out.push({ field, expected: undefined, actual: v, repairable: !STREAM_IMMUTABLE.has(field) });
  }
  return out;
}

export interface ConsumerLimits {
  replicas: number;
  /** Deliveries of one message before the server stops offering it. */
  maxDeliver: number;
}

function pullConsumer(durable: string, filter: string | undefined, o: ConsumerLimits): Partial<ConsumerConfig> {
  return {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_ack_pending: 1024,
    max_deliver: o.maxDeliver,
    num_replicas: o.replicas,
    ...(filter ? { filter_subject: filter } : {}),
  };
}

export function hubConsumerConfig(o: ConsumerLimits): Partial<ConsumerConfig> {
  return pullConsumer(subjects.hubConsumer, undefined, o);
}

export function listenerConsumerConfig(listenerId: string, o: ConsumerLimits): Partial<ConsumerConfig> {
  return pullConsumer(subjects.listenerConsumer(listenerId), subjects.toListenerAll(listenerId), o);
}

/**
 * The site's urgent lane (compromise, destroy): a consumer of its own on a
 * subject outside the normal consumer's filter, so a command there is never
 * behind the normal backlog (nats-server 2.9 gives a consumer one filter
 * subject, so one consumer cannot read both lanes in priority order).
 */
export function listenerUrgentConsumerConfig(listenerId: string, o: ConsumerLimits): Partial<ConsumerConfig> {
  // Never given up on: a compromise must reach the site however long it was away (max_deliver -1).
  return pullConsumer(subjects.listenerUrgentConsumer(listenerId), subjects.urgent(listenerId), { ...o, maxDeliver: -1 });
}

/** Reads only the site's NATS credentials (see permissions.ts); the one consumer a bootstrap credential may pull. */
export function enrollmentConsumerConfig(listenerId: string, o: ConsumerLimits): Partial<ConsumerConfig> {
  return pullConsumer(enrollmentConsumer(listenerId), subjects.toListener(listenerId, 'nats_credentials'), o);
}

/** The expected config of a durable found on a Keyhub stream, from its name; undefined when it is not one of ours. */
export function expectedConsumer(stream: string, durable: string | undefined, o: ConsumerLimits): Partial<ConsumerConfig> | undefined {
  if (!durable) return undefined;
  if (stream === STREAMS.up.name) return durable === subjects.hubConsumer ? hubConsumerConfig(o) : undefined;
  if (stream !== STREAMS.down.name) return undefined;
  const m = /^(listener|enroll|urgent)-(.+)$/.exec(durable);
  if (!m || !LISTENER_ID_PATTERN.test(m[2])) return undefined;
  if (m[1] === 'urgent') return listenerUrgentConsumerConfig(m[2], o);
  return m[1] === 'listener' ? listenerConsumerConfig(m[2], o) : enrollmentConsumerConfig(m[2], o);
}

const CONSUMER_MUTABLE = new Set(['ack_wait', 'max_deliver', 'max_ack_pending', 'num_replicas']);
const CONSUMER_MUST_BE_ABSENT = ['deliver_subject', 'deliver_group', 'filter_subjects'];

export function consumerDrift(expected: Partial<ConsumerConfig>, actual: Partial<ConsumerConfig>): Drift[] {
  const out: Drift[] = [];
  const a = actual as Record<string, unknown>;
  for (const [field, want] of Object.entries(expected)) {
    // A consumer's replicas follow the stream's when 0 is stored; that is not drift.
    if (field === 'num_replicas' && (a[field] === 0 || a[field] === undefined)) continue;
    if (!same(want, a[field], false)) out.push({ field, expected: want, actual: a[field], repairable: CONSUMER_MUTABLE.has(field) });
  }
  if (!expected.filter_subject && a.filter_subject) out.push({ field: 'filter_subject', expected: undefined, actual: a.filter_subject, repairable: false });
  for (const field of CONSUMER_MUST_BE_ABSENT) {
    const v = a[field];
    if (v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0)) out.push({ field, expected: undefined, actual: v, repairable: false });
  }
  return out;
}

function same(want: unknown, got: unknown, unordered: boolean): boolean {
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) return false;
    const w = unordered ? [...want].sort() : want;
    const g = unordered ? [...got].sort() : got;
    return w.every((x, i) => x === g[i]);
  }
  if (want === false && got === undefined) return true;
  if (want === -1 && got === undefined) return true;
  return want === got;
}
