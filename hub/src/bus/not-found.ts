/** JetStream's answer for a stream or consumer that does not exist (nats.js has no error code for it in every path). */
export function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}
