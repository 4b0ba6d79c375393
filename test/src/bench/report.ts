import type { BareLimits } from './context';
import type { Metric, StageResult } from './lib';

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  machine: Record<string, unknown>;
  argv: string[];
  notes: string[];
  limits: BareLimits;
  rssMb: Record<string, number>;
  goals: Array<{ stage: string; key: string; label: string; value: number | string | null; unit: string; target: string; pass: boolean | null }>;
  stages: StageResult[];
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function formatValue(m: Pick<Metric, 'value' | 'unit'>): string {
  if (m.value === null) return 'n/a';
  if (typeof m.value === 'string') return m.value;
  const v = Math.abs(m.value) >= 1000 ? Math.round(m.value).toLocaleString('en-US') : String(m.value);
  return m.unit === 'x' ? `${v}x` : `${v} ${m.unit}`;
}

function loadText(s: StageResult): string {
  const l = s.details.loadavg as { atStart: number[]; atEnd: number[] } | undefined;
  return l ? `${l.atStart[0].toFixed(1)}->${l.atEnd[0].toFixed(1)}` : '?';
}

function verdict(pass: boolean | null | undefined): string {
  if (pass === undefined) return '';
  if (pass === null) return 'n/a';
  return pass ? 'PASS' : 'FAIL';
}

export function renderMarkdown(r: BenchReport): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(`# Keyhub benchmark, ${r.startedAt}`);
  lines.push('');
  lines.push(
    `Machine: ${String(m.cpus)} x ${String(m.cpuModel)}, ${String(m.memoryGb)} GB, ${String(m.os)}, Node ${String(m.node)}. ` +
      `Stages: ${r.stages.map((s) => `${s.stage} (${s.status}, ${(s.durationMs / 1000).toFixed(0)} s, 1-min load ${loadText(s)})`).join(', ')}; total ${(r.durationMs / 1000).toFixed(0)} s.`,
  );
  for (const n of r.notes) lines.push(`Note: ${n}.`);
  lines.push('');
  lines.push('| stage | metric | value | goal | result | notes |');
  lines.push('|---|---|---:|---|---|---|');
  for (const s of r.stages) {
    if (s.status !== 'ok') lines.push(`| ${s.stage} | **stage ${s.status}** | | | FAIL | ${cell(s.error ?? '')} |`);
    for (const x of s.metrics) {
      lines.push(`| ${s.stage} | ${cell(x.label)} | ${cell(formatValue(x))} | ${cell(x.goal?.text ?? '')} | ${verdict(x.goal?.pass)} | ${cell(x.note ?? '')} |`);
    }
  }
  lines.push('');
  const passed = r.goals.filter((g) => g.pass === true).length;
  const failed = r.goals.filter((g) => g.pass === false);
  const unknown = r.goals.filter((g) => g.pass === null);
  lines.push(`Goals: ${passed} passed, ${failed.length} failed${unknown.length ? `, ${unknown.length} not evaluated` : ''} of ${r.goals.length}.`);
  for (const g of failed) lines.push(`- FAIL ${g.stage}: ${g.label} = ${formatValue(g)} (goal ${g.target})`);
  for (const g of unknown) lines.push(`- n/a ${g.stage}: ${g.label} (goal ${g.target})`);
  return `${lines.join('\n')}\n`;
}
