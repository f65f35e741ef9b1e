/**
 * One /metrics for the whole server. Each worker keeps its own prom-client registry; the worker that
 * receives GET /metrics asks the primary, whose AggregatorRegistry collects every worker's registry
 * over IPC and sums them (counters and histograms per label set; gauges as prom-client's default
 * aggregators say), then answers with the text.
 */
import cluster from "node:cluster";
import { AggregatorRegistry, type Registry } from "prom-client";

const REQ = "convmark:metrics-req";
const RES = "convmark:metrics-res";
const TIMEOUT_MS = 10_000;

interface MetricsReq {
  readonly type: typeof REQ;
  readonly id: number;
}
interface MetricsRes {
  readonly type: typeof RES;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/** In the primary: answer every worker's request with the aggregated metrics of all workers. */
export function startMetricsAggregator(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, msg: unknown) => {
    const m = msg as Partial<MetricsReq> | null;
    if (!m || m.type !== REQ || typeof m.id !== "number") return;
    const id = m.id;
    aggregator.clusterMetrics().then(
      (text) => worker.isConnected() && worker.send({ type: RES, id, text } satisfies MetricsRes),
      (e: unknown) => worker.isConnected() && worker.send({ type: RES, id, error: e instanceof Error ? e.message : String(e) } satisfies MetricsRes),
    );
  });
}

/**
 * In a worker: report `registry` when the primary collects, and return the function /metrics calls
 * to get the whole server's text.
 */
export function clusterMetricsSource(registry: Registry): () => Promise<string> {
  // Constructing one installs prom-client's worker-side listener; setRegistries says what it reports.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const pending = new Map<number, { resolve(text: string): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  process.on("message", (msg: unknown) => {
    const m = msg as Partial<MetricsRes> | null;
    if (!m || m.type !== RES || typeof m.id !== "number") return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    if (typeof m.text === "string") p.resolve(m.text);
    else p.reject(new Error(m.error ?? "metrics aggregation failed"));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error("the primary did not answer the metrics request"));
      }, TIMEOUT_MS);
      timer.unref();
      pending.set(id, { resolve, reject, timer });
      process.send!({ type: REQ, id } satisfies MetricsReq);
    });
}
