import { STREAMS, SUBJECT_ROOT, subjects } from '@keyhub/protocol';
import type { UserPermissions } from './nats-jwt';

/**
 * Who may do what on NATS: one function per kind of user, each an allow
 * list (a user JWT with an allow list refuses everything else). Rules from
 * FIELD-NOTES "NATS authorization": pulled messages arrive on the puller's
 * reply inbox, so each user subscribes only under an inbox prefix of its
 * own, and never `_INBOX.>`.
 */

/** The hub's inbox prefix. Listener ids cannot start with `_`, so no listener's `_INBOX_<id>` can equal it. */
export const HUB_INBOX_PREFIX = '_INBOX__hub';
/** The hub's connection to the system account, used only to push account updates. */
export const HUB_SYSTEM_INBOX_PREFIX = '_INBOX__hubsys';

export function listenerInboxPrefix(listenerId: string): string {
  return `_INBOX_${listenerId}`;
}

/** Durable consumer from which a bootstrap credential reads only the NATS credentials of its site. */
export function enrollmentConsumer(listenerId: string): string {
  return `enroll-${listenerId}`;
}

/** Pull, info and ack on one durable consumer of the DOWN stream, and nothing else of the JetStream API. */
function consumerRights(consumer: string): string[] {
  const stream = STREAMS.down.name;
  return [
    `$JS.API.CONSUMER.INFO.${stream}.${consumer}`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
    // 2.9 acks in the v1 form; newer servers may add domain and account hash tokens.
    `$JS.ACK.${stream}.${consumer}.>`,
    `$JS.ACK.*.*.${stream}.${consumer}.>`,
  ];
}

/** An approved listener: its own consumers (normal and urgent lane), its own UP subjects and heartbeats, its own inbox. */
export function listenerPermissions(listenerId: string): UserPermissions {
  return {
    pub: {
      allow: [
        `${SUBJECT_ROOT}.from.${listenerId}.>`,
        subjects.heartbeat(listenerId),
        ...consumerRights(subjects.listenerConsumer(listenerId)),
        // Its urgent lane (compromise, destroy): its own second consumer, no other.
        ...consumerRights(subjects.listenerUrgentConsumer(listenerId)),
      ],
    },
    sub: { allow: [`${listenerInboxPrefix(listenerId)}.>`] },
  };
}

/** A site before approval: send its enrollment, read the answer (its own credentials), nothing else. */
export function bootstrapPermissions(listenerId: string): UserPermissions {
  return {
    pub: { allow: [subjects.fromListener(listenerId, 'enroll'), ...consumerRights(enrollmentConsumer(listenerId))] },
    sub: { allow: [`${listenerInboxPrefix(listenerId)}.>`] },
  };
}

/**
 * The hub: manages streams and consumers, publishes DOWN, reads UP through
 * its durable, hears heartbeats. Only it may subscribe under its inbox
 * prefix, so only the server can answer the relay's publishes; it may not
 * publish as a listener.
 */
export function hubPermissions(): UserPermissions {
  return {
    pub: {
      allow: ['$JS.API.>', `${SUBJECT_ROOT}.to.>`, `${SUBJECT_ROOT}.urgent.>`, `$JS.ACK.${STREAMS.up.name}.${subjects.hubConsumer}.>`, `$JS.ACK.*.*.${STREAMS.up.name}.${subjects.hubConsumer}.>`],
    },
    sub: { allow: [`${HUB_INBOX_PREFIX}.>`, subjects.heartbeatAll] },
  };
}

/** The hub's system-account user: account updates, nothing else. */
export function hubSystemPermissions(): UserPermissions {
  return {
    pub: { allow: ['$SYS.REQ.CLAIMS.UPDATE', '$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE'] },
    sub: { allow: [`${HUB_SYSTEM_INBOX_PREFIX}.>`] },
  };
}
