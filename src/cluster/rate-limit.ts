/**
 * The one place vendor rate limiters are made. In a cluster worker they are RateLimiterCluster
 * instances: every consume() is counted by the RateLimiterClusterMaster in the primary process, so
 * a limit holds for the whole server, not per worker. In a single process they are in memory.
 */
import cluster from "node:cluster";
import { RateLimiterCluster, RateLimiterClusterMaster, RateLimiterMemory, type RateLimiterAbstract } from "rate-limiter-flexible";

export interface RateLimitSpec {
  readonly points: number;
  readonly durationSeconds: number;
  /** Unique per limiter (the primary keys its counters by it). */
  readonly keyPrefix: string;
}

export type RateLimiterFactory = (spec: RateLimitSpec) => RateLimiterAbstract;

/** How long a worker waits for the primary's verdict before the call fails (as a limiter error, not a limit). */
const CLUSTER_TIMEOUT_MS = 5000;

export const createRateLimiter: RateLimiterFactory = (spec) => {
  const opts = { points: spec.points, duration: spec.durationSeconds, keyPrefix: spec.keyPrefix };
  return cluster.isWorker ? new RateLimiterCluster({ ...opts, timeoutMs: CLUSTER_TIMEOUT_MS }) : new RateLimiterMemory(opts);
};

/** In the primary: the counters every worker's limiters consult. Idempotent (the library keeps one instance). */
export function startRateLimiterMaster(): void {
  new RateLimiterClusterMaster();
}
