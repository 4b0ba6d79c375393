import { collectProcessMetrics, Counter, Gauge, type Registry } from '@keyhub/shared';
import type { InboxResult } from '../inbox';

/**
 * What this listener did with what the hub sent. Labels carry outcomes and
 * protocol error codes only (bounded sets); package and key ids stay in the
 * logs and the journal.
 */
export class ListenerMetrics {
  private readonly packages: Counter<'outcome' | 'code'>;
  private readonly rootKeks: Counter<'result'>;
  private readonly commands: Counter<'action' | 'outcome' | 'code'>;

  constructor(registry: Registry, lastSequence: () => number | undefined) {
    collectProcessMetrics(registry);
    const registers = [registry];
    this.packages = new Counter({
      name: 'keyhub_listener_packages_total',
      help: 'Messages from the hub by outcome (a receipt outcome such as imported or failed, redelivered, or dropped) and protocol error code ("none" without one)',
      labelNames: ['outcome', 'code'],
      registers,
    });
    this.commands = new Counter({
      name: 'keyhub_listener_commands_total',
      help: 'Lifecycle commands from the hub by action, outcome (done, already_done, failed, rejected, replayed) and protocol error code ("none" without one)',
      labelNames: ['action', 'outcome', 'code'],
      registers,
    });
    this.rootKeks = new Counter({ name: 'keyhub_listener_root_kek_messages_total', help: 'Root KEK messages handled, by result (stored, present)', labelNames: ['result'], registers });
    const gauge: Gauge = new Gauge({
      name: 'keyhub_listener_last_sequence',
      help: 'Highest package sequence number accepted from the hub (the top of the anti-replay window)',
      registers,
      collect: () => {
        const v = lastSequence();
        gauge.reset();
        if (v !== undefined) gauge.set(v);
      },
    });
  }

  record(r: InboxResult): void {
    switch (r.kind) {
      case 'receipt':
        this.packages.inc({ outcome: r.outcome, code: r.code ?? 'none' });
        return;
      case 'redelivered':
        this.packages.inc({ outcome: 'redelivered', code: 'none' });
        return;
      case 'dropped':
        this.packages.inc({ outcome: 'dropped', code: r.code });
        return;
      case 'root_kek':
        this.rootKeks.inc({ result: r.result });
        return;
      case 'command':
        this.commands.inc({ action: r.action, outcome: r.outcome, code: r.code ?? 'none' });
        return;
      case 'command_replayed':
        this.commands.inc({ action: r.action, outcome: 'replayed', code: 'none' });
        return;
    }
  }
}
