import { AUDIT_CHECKPOINT_TYPE, MESSAGE_TYPES, NATS_CREDENTIALS_TYPE, type ErrorCode, type MessageType } from '@keyhub/protocol';

/**
 * What each fuzzed handler does with a well-formed message of each type,
 * correctly signed by whoever may send that type. A record over every
 * `MessageType`: a type added to the protocol does not compile until each
 * handler's line for it is written here, and registry.test.ts checks the
 * tables against `messageSchema` at run time. 'handled' types have their
 * own generators of genuine traffic in the target's test; for the others the
 * fuzzer sends every type signed by the right key and expects this code.
 */
export type Disposition = 'handled' | ErrorCode;

/** listener/src/inbox.ts (DOWN stream). NATS credentials are taken by the bus before the inbox (listener-bus.ts). */
export const INBOX_DISPOSITION: Record<MessageType, Disposition> = {
  [MESSAGE_TYPES.keyPackage]: 'handled',
  [MESSAGE_TYPES.rootKek]: 'handled',
  [AUDIT_CHECKPOINT_TYPE]: 'handled',
  // Signed by the hub but wrapped under a root KEK the site does not hold: dropped with that code, nothing installed, no confirmation.
  [MESSAGE_TYPES.rootKekRotation]: 'KEK_UNKNOWN',
  // Signed by the hub but carrying a hub key that is not the pinned one (the generator's): dropped, nothing kept for `root-kek enter`.
  [MESSAGE_TYPES.rootKekCeremony]: 'HUB_KEY_NOT_PINNED',
  [MESSAGE_TYPES.enrollmentRequest]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKekConfirm]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.receipt]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.heartbeat]: 'MESSAGE_UNKNOWN_TYPE',
  [NATS_CREDENTIALS_TYPE]: 'MESSAGE_UNKNOWN_TYPE',
  // Carried out by commands/command-handler.ts; the fuzzer has no genuine commands, so every one it throws must be dropped unverified.
  [MESSAGE_TYPES.keyCommand]: 'handled',
  [MESSAGE_TYPES.commandReceipt]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.inventory]: 'MESSAGE_UNKNOWN_TYPE',
  // Signed by the hub, but for a target with no token of its own here (the fuzz site has only its own token): dropped, nothing installed, no confirmation.
  [MESSAGE_TYPES.targetKek]: 'TARGET_UNKNOWN',
  // The same for a target KEK rotation: signed by the hub, for a target with no token of its own here: dropped, nothing unwrapped or destroyed, no confirmation.
  [MESSAGE_TYPES.targetKekRotation]: 'TARGET_UNKNOWN',
  [MESSAGE_TYPES.targetKekRequest]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetKekConfirm]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetUpdate]: 'MESSAGE_UNKNOWN_TYPE',
};

/** hub/src/bus/up-handler.ts (UP stream), for a message signed by the listener named in its subject. */
export const UP_DISPOSITION: Record<MessageType, Disposition> = {
  [MESSAGE_TYPES.enrollmentRequest]: 'handled',
  [MESSAGE_TYPES.rootKekConfirm]: 'handled',
  [MESSAGE_TYPES.receipt]: 'handled',
  [MESSAGE_TYPES.keyPackage]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKek]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.heartbeat]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKekRotation]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKekCeremony]: 'MESSAGE_UNKNOWN_TYPE',
  [AUDIT_CHECKPOINT_TYPE]: 'MESSAGE_UNKNOWN_TYPE',
  [NATS_CREDENTIALS_TYPE]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.keyCommand]: 'MESSAGE_UNKNOWN_TYPE',
  // Signed by the listener but naming no command the hub sent it: refused, nothing changed.
  [MESSAGE_TYPES.commandReceipt]: 'COMMAND_RECEIPT_MISMATCH',
  // Signed by the listener, but its generator dates it two days back: outside the freshness window, refused, nothing stored.
  [MESSAGE_TYPES.inventory]: 'INVENTORY_STALE',
  // Signed by the listener, but its transport key is RSA-1024 (the generator's): refused before anything is recorded.
  [MESSAGE_TYPES.targetKekRequest]: 'MESSAGE_MALFORMED',
  // Signed by the listener but naming no target KEK the hub made: refused, nothing activated.
  [MESSAGE_TYPES.targetKekConfirm]: 'KEK_UNKNOWN',
  [MESSAGE_TYPES.targetKek]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetKekRotation]: 'MESSAGE_UNKNOWN_TYPE',
  // Signed by the listener, but removing a target the site does not have: refused, nothing recorded.
  [MESSAGE_TYPES.targetUpdate]: 'TARGET_UNKNOWN',
};

/**
 * hub/src/bus/heartbeat-handler.ts (core NATS). It answers nothing and
 * returns nothing: a type other than heartbeat is dropped without a word,
 * which the fuzzer checks as "not recorded", with the code decodeEnvelope
 * or the type check would give.
 */
export const HEARTBEAT_DISPOSITION: Record<MessageType, Disposition> = {
  [MESSAGE_TYPES.heartbeat]: 'handled',
  [MESSAGE_TYPES.enrollmentRequest]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKek]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKekConfirm]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.keyPackage]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKekRotation]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.rootKekCeremony]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.receipt]: 'MESSAGE_UNKNOWN_TYPE',
  [AUDIT_CHECKPOINT_TYPE]: 'MESSAGE_UNKNOWN_TYPE',
  [NATS_CREDENTIALS_TYPE]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.keyCommand]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.commandReceipt]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.inventory]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetKekRequest]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetKek]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetKekConfirm]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetKekRotation]: 'MESSAGE_UNKNOWN_TYPE',
  [MESSAGE_TYPES.targetUpdate]: 'MESSAGE_UNKNOWN_TYPE',
};

export const ALL_DISPOSITIONS = { inbox: INBOX_DISPOSITION, up: UP_DISPOSITION, heartbeat: HEARTBEAT_DISPOSITION } as const;
