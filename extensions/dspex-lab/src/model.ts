/**
 * The messages exchanged over the `dspex_lab` comm and the pure formatting used by the panel.
 * No JupyterLab imports, so jest tests it directly.
 *
 * Kernel -> frontend:
 *
 *     {type: 'snapshot', pools: [...], recent: [...], totals: {...}}
 *     {type: 'ack', action: 'restart_pools', ok: true, message: '...'}
 *
 * Frontend -> kernel: `{type: 'refresh'}` and `{type: 'restart_pools'}`.
 */

/** One worker pool, as returned by `dspex_lab.workers.pool_status()`. */
export interface IPoolStatus {
  name: string;
  size?: number;
  alive?: number;
  busy?: number;
  queued?: number;
  tasks_done?: number;
  restarts?: number;
}

/** One recent call (an `lm.call` or a finished pool task). */
export interface IRecentCall {
  kind: string;
  ts: number;
  label?: string;
  latency_ms?: number | null;
  tokens?: number | null;
  cost?: number | null;
  error?: string | null;
}

/** Counters since the kernel started (bounded by the telemetry buffer). */
export interface ITotals {
  calls: number;
  errors: number;
  tokens: number;
  cost: number;
  tasks?: number;
  events?: number;
  latency_ms?: number | null;
}

/** A full state update pushed by the kernel. */
export interface ISnapshot {
  type: 'snapshot';
  pools: IPoolStatus[];
  recent: IRecentCall[];
  totals: ITotals;
  progress?: Record<string, unknown> | null;
}

/** The kernel's answer to an action such as `restart_pools`. */
export interface IAck {
  type: 'ack';
  action: string;
  ok: boolean;
  message: string;
}

export type KernelMessage = ISnapshot | IAck;

/** Narrow an untyped comm payload; `null` for anything this version does not understand. */
export function parseMessage(data: unknown): KernelMessage | null {
  if (typeof data !== 'object' || data === null) {
    return null;
  }
  const msg = data as Record<string, unknown>;
  if (msg.type === 'snapshot') {
    return {
      type: 'snapshot',
      pools: Array.isArray(msg.pools) ? (msg.pools as IPoolStatus[]) : [],
      recent: Array.isArray(msg.recent) ? (msg.recent as IRecentCall[]) : [],
      totals: { calls: 0, errors: 0, tokens: 0, cost: 0, ...(msg.totals as object) },
      progress: (msg.progress as Record<string, unknown>) ?? null
    };
  }
  if (msg.type === 'ack') {
    return {
      type: 'ack',
      action: String(msg.action ?? ''),
      ok: Boolean(msg.ok),
      message: String(msg.message ?? '')
    };
  }
  return null;
}

function isNumber(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** `12 ms`, `1.25 s`; `–` when unknown. */
export function formatLatency(ms: number | null | undefined): string {
  if (!isNumber(ms)) {
    return '–';
  }
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** `950`, `12.3k`, `4.5M`; `–` when unknown. */
export function formatCount(n: number | null | undefined): string {
  if (!isNumber(n)) {
    return '–';
  }
  if (Math.abs(n) < 1000) {
    return String(Math.round(n));
  }
  if (Math.abs(n) < 1e6) {
    return `${(n / 1000).toFixed(1)}k`;
  }
  return `${(n / 1e6).toFixed(1)}M`;
}

/** `$0`, `$0.0012`, `$1.23`; `–` when unknown. */
export function formatCost(usd: number | null | undefined): string {
  if (!isNumber(usd)) {
    return '–';
  }
  if (usd === 0) {
    return '$0';
  }
  return usd < 0.01 ? `$${usd.toPrecision(2)}` : `$${usd.toFixed(2)}`;
}

/** The wall-clock time of an epoch-seconds timestamp, `HH:MM:SS`. */
export function formatTime(ts: number): string {
  const d = new Date(ts * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `3/4 alive` (with the dead count highlighted by the caller when alive < size). */
export function formatWorkers(pool: IPoolStatus): string {
  const alive = isNumber(pool.alive) ? pool.alive : '?';
  return isNumber(pool.size) ? `${alive}/${pool.size}` : String(alive);
}

/** True when a pool has fewer live workers than its size. */
export function isDegraded(pool: IPoolStatus): boolean {
  return isNumber(pool.size) && isNumber(pool.alive) && pool.alive < pool.size;
}

/** The state of the panel's connection to the current kernel. */
export type ConnectionState =
  | 'no-kernel'
  | 'connecting'
  | 'connected'
  | 'unregistered'
  | 'disconnected';

/** The one-line status text shown for a connection state. */
export function describeState(state: ConnectionState): string {
  switch (state) {
    case 'no-kernel':
      return 'Open a notebook with a running kernel to see DSPex pools and telemetry.';
    case 'connecting':
      return 'Connecting to the kernel…';
    case 'connected':
      return 'Live';
    case 'unregistered':
      return 'DSPex is not loaded in this kernel: run `%load_ext dspex_lab` in the notebook.';
    case 'disconnected':
      return 'Disconnected from the kernel.';
  }
}
