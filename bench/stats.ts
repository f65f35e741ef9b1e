/** Latency and throughput bookkeeping shared by the load drivers. */
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";

/** Latencies in milliseconds, growable without boxing. */
export class LatencyLog {
  private data = new Float64Array(1 << 14);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = ms;
  }

  get count(): number {
    return this.n;
  }

  /** The latencies added, in order. */
  toArray(): number[] {
    return Array.from(this.data.subarray(0, this.n));
  }

  addAll(other: LatencyLog): void {
    for (let i = 0; i < other.n; i++) this.add(other.data[i]!);
  }

  /** Nearest-rank percentile (p in 0..100); NaN when empty. */
  percentile(p: number): number {
    if (this.n === 0) return Number.NaN;
    const sorted = this.data.slice(0, this.n).sort();
    const rank = Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1));
    return sorted[rank]!;
  }
}

/** One measured slice: `requests` sent, `units` what the row counts (successful requests or applied updates). */
export interface Slice {
  readonly requests: number;
  readonly units: number;
  readonly errors: number;
  readonly seconds: number;
  readonly latencies: LatencyLog;
  /** Server CPU time during the slice, in seconds (undefined for in-process rows). */
  readonly serverCpuSeconds?: number;
  /** This (load) process's CPU time during the slice, in seconds. */
  readonly loadCpuSeconds: number;
}

/** Several slices of the same row (one per round), summed. */
export class RowTotals {
  requests = 0;
  units = 0;
  errors = 0;
  seconds = 0;
  serverCpuSeconds = 0;
  hasServerCpu = false;
  loadCpuSeconds = 0;
  readonly latencies = new LatencyLog();
  firstError?: string;

  add(s: Slice): void {
    this.requests += s.requests;
    this.units += s.units;
    this.errors += s.errors;
    this.seconds += s.seconds;
    this.loadCpuSeconds += s.loadCpuSeconds;
    if (s.serverCpuSeconds !== undefined) {
      this.serverCpuSeconds += s.serverCpuSeconds;
      this.hasServerCpu = true;
    }
    this.latencies.addAll(s.latencies);
  }

  get rps(): number {
    return this.seconds > 0 ? this.requests / this.seconds : 0;
  }

  get unitsPerSecond(): number {
    return this.seconds > 0 ? this.units / this.seconds : 0;
  }
}

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** What stalled a load-driving process (the client) while a latency row ran: a stalled client adds to every latency it measures. */
export interface ClientStalls {
  /** Event-loop delay p99, ms. */
  readonly loopDelayP99Ms: number;
  /** GC pauses over 5 ms, and the longest, ms. */
  readonly gcOver5ms: number;
  readonly gcMaxMs: number;
}

/** Starts watching this process's event-loop delay and GC pauses; the returned function stops and reports. */
export function watchClientStalls(): () => ClientStalls {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const pauses: number[] = [];
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pauses.push(e.duration);
  });
  gc.observe({ entryTypes: ["gc"] });
  return () => {
    delay.disable();
    gc.disconnect();
    return {
      loopDelayP99Ms: round(delay.percentile(99) / 1e6),
      gcOver5ms: pauses.filter((d) => d > 5).length,
      gcMaxMs: round(pauses.reduce((a, b) => Math.max(a, b), 0)),
    };
  };
}
