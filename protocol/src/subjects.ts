/**
 * Every NATS subject and stream Keyhub uses. Hub-to-listener traffic lives under
 * `keyhub.v1.to.<listener>` in the DOWN stream; listener-to-hub traffic under
 * `keyhub.v1.from.<listener>` in the UP stream. Putting the listener id in the
 * subject lets NATS permissions confine each listener to its own subjects.
 */
export const SUBJECT_ROOT = 'keyhub.v1';

export const STREAMS = {
  down: { name: 'KEYHUB_DOWN', subjects: [`${SUBJECT_ROOT}.to.>`, `${SUBJECT_ROOT}.urgent.>`] },
  up: { name: 'KEYHUB_UP', subjects: [`${SUBJECT_ROOT}.from.>`] },
} as const;

/** Listener ids appear in subjects, so they are restricted to subject-safe tokens. */
export const LISTENER_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

export type DownKind = 'package' | 'root_kek' | 'checkpoint' | 'nats_credentials' | 'command' | 'target_kek';
export type UpKind = 'enroll' | 'receipt' | 'kek_confirm' | 'command_receipt' | 'inventory' | 'target_kek' | 'target_update';

export const subjects = {
  toListener: (listenerId: string, kind: DownKind): string => `${SUBJECT_ROOT}.to.${listenerId}.${kind}`,
  toListenerAll: (listenerId: string): string => `${SUBJECT_ROOT}.to.${listenerId}.>`,
  /**
   * The urgent lane (compromise, destroy): outside `to.<id>.>`, so that the
   * listener's normal consumer (one filter subject on nats-server 2.9) never
   * holds it behind a backlog; its own durable consumer reads only it.
   */
  urgent: (listenerId: string): string => `${SUBJECT_ROOT}.urgent.${listenerId}`,
  /** Durable consumer through which one listener reads its urgent lane. */
  listenerUrgentConsumer: (listenerId: string): string => `urgent-${listenerId}`,
  fromListener: (listenerId: string, kind: UpKind): string => `${SUBJECT_ROOT}.from.${listenerId}.${kind}`,
  fromAllListeners: `${SUBJECT_ROOT}.from.>`,
  /** Heartbeats are core NATS (not stored): only the latest one matters. */
  heartbeat: (listenerId: string): string => `${SUBJECT_ROOT}.heartbeat.${listenerId}`,
  heartbeatAll: `${SUBJECT_ROOT}.heartbeat.*`,
  /** Durable consumer through which one listener reads its own DOWN subjects. */
  listenerConsumer: (listenerId: string): string => `listener-${listenerId}`,
  /** Durable consumer shared by every hub replica for the UP stream. */
  hubConsumer: 'hub',
} as const;

/** Extracts the listener id from an UP subject, or undefined when the subject is not one of ours. */
export function listenerIdFromUpSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  if (parts.length !== 5 || `${parts[0]}.${parts[1]}` !== SUBJECT_ROOT || parts[2] !== 'from') return undefined;
  return LISTENER_ID_PATTERN.test(parts[3]) ? parts[3] : undefined;
}
