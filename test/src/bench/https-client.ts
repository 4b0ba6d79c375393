/**
 * The bench's HTTPS client for the hub API: node:https with the hub CA
 * pinned (no system CAs), a bearer token, and the time of each request from
 * its start until the last byte of the answer (parsing the JSON is not
 * timed). Either one kept-alive connection for every request, or a new TCP
 * connection and TLS handshake for each (as a CLI process makes).
 */
import { Agent, request } from 'node:https';
import { now, percentile } from './lib';

export interface TimedResponse {
  status: number;
  text: string;
  /** Request start to the answer's last byte. */
  ms: number;
  /** now() at the answer's last byte. */
  endedAt: number;
  /** Whether the request went over a connection opened before it (keep-alive). */
  reusedSocket: boolean;
}

export class BenchHttpsClient {
  private readonly base: URL;
  private readonly agent: Agent | false;

  constructor(
    url: string,
    private readonly caPem: string,
    private readonly token: string,
    readonly keepAlive: boolean,
  ) {
    this.base = new URL(url);
    // One socket: requests are sequential, so every one after the first reuses it.
    this.agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: 1, ca: caPem }) : false;
  }

  request(method: string, path: string, body?: unknown): Promise<TimedResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${this.token}` };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const started = now();
      const req = request({ method, hostname: this.base.hostname, port: this.base.port, path, headers, ca: this.caPem, agent: this.agent, timeout: 300_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const endedAt = now();
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), ms: endedAt - started, endedAt, reusedSocket: req.reusedSocket });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  /** A request that must answer `expect`; its body parsed as JSON. */
  async json<T>(method: string, path: string, body?: unknown, expect = 200): Promise<{ body: T; ms: number; endedAt: number; bytes: number; reusedSocket: boolean }> {
    const r = await this.request(method, path, body);
    if (r.status !== expect) throw new Error(`${method} ${path}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    return { body: JSON.parse(r.text) as T, ms: r.ms, endedAt: r.endedAt, bytes: Buffer.byteLength(r.text), reusedSocket: r.reusedSocket };
  }

  close(): void {
    if (this.agent) this.agent.destroy();
  }
}

export interface LatencySample {
  requests: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number;
  /** Size of one answer (the last). */
  bytes: number;
  /** Rows in one answer, as `count` reads them. */
  rows: number;
  /** Requests that went over an already open connection (all but none with keep-alive, none without). */
  reused: number;
}

/** `n` sequential GETs of `path` after `warmup` untimed ones: nearest-rank p50/p99 of the request-to-last-byte times. */
export async function sampleLatency(client: BenchHttpsClient, path: string, n: number, warmup: number, count: (body: unknown) => number): Promise<LatencySample> {
  for (let i = 0; i < warmup; i++) await client.json('GET', path);
  const ms: number[] = [];
  let bytes = 0;
  let rows = 0;
  let reused = 0;
  for (let i = 0; i < n; i++) {
    const r = await client.json<unknown>('GET', path);
    ms.push(r.ms);
    if (r.reusedSocket) reused++;
    if (i === n - 1) {
      bytes = r.bytes;
      rows = count(r.body);
    }
  }
  return { requests: n, p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: Math.max(...ms), meanMs: ms.reduce((a, b) => a + b, 0) / n, bytes, rows, reused };
}
