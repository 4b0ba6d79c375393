import type { Logger } from '@keyhub/shared';

/**
 * ListenerBus keeps its NATS connection to itself and reports connection
 * changes only as structured log records ({ event: 'nats_status', type }).
 * This returns a logger that, besides logging, hands each such type to
 * `onStatus`, so readiness can follow the connection through the bus's
 * public surface. If the bus ever exposes its connection, read it there.
 */
export function tapNatsStatus(logger: Logger, onStatus: (type: string) => void): Logger {
  return new Proxy(logger, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (prop !== 'info' || typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        const fields = args[0];
        if (typeof fields === 'object' && fields !== null && 'event' in fields && fields.event === 'nats_status' && 'type' in fields) onStatus(String(fields.type));
        return Reflect.apply(value, target, args);
      };
    },
  });
}
