/**
 * The cluster primary (CONVMARK_WORKERS > 1): forks the workers, which share the listening port
 * (node:cluster hands connections out round-robin) and the SQLite file, and holds what must be one
 * per server: the rate-limit counters (RateLimiterClusterMaster), the metrics aggregation, the
 * directory of the shared replay cache, and the shutdown. It serves no requests itself.
 */
import cluster, { type Worker } from "node:cluster";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { startMetricsAggregator } from "./metrics.js";
import { openSharedKickList, openSharedNonceStore } from "./nonce-store.js";
import { isFeedMessage } from "../store/sqlite-feed.js";
import { startRateLimiterMaster } from "./rate-limit.js";

/** Set by the primary in each worker's environment. */
export const STATE_DIR_ENV = "CONVMARK_CLUSTER_STATE_DIR";
export const SHUTDOWN_MESSAGE = "convmark:shutdown";
export const NONCE_FILE = "nonces.db";

export interface PrimaryOptions {
  readonly workers: number;
  readonly logger: Logger;
  /** Workers get this long to drain after the shutdown request before they are killed. */
  readonly shutdownGraceMs: number;
  /** A worker that dies is replaced; more than this many deaths within a minute stop the server. */
  readonly maxRestartsPerMinute?: number;
}

export function runPrimary(opts: PrimaryOptions): void {
  const log = opts.logger.child({ role: "primary" });
  const stateDir = mkdtempSync(join(tmpdir(), "convmark-cluster-"));
  // Created here once (schema, WAL) so the workers do not race to set it up.
  openSharedNonceStore(join(stateDir, NONCE_FILE), 1).close();
  openSharedKickList(join(stateDir, NONCE_FILE), 1).close();
  startRateLimiterMaster();
  startMetricsAggregator();

  const listening = new Set<Worker>();
  const restarts: number[] = [];
  let allListening = false;
  let shuttingDown = false;
  let exitCode = 0;

  const fork = (): Worker => cluster.fork({ [STATE_DIR_ENV]: stateDir });

  const finish = () => {
    rmSync(stateDir, { recursive: true, force: true });
    log.info({ code: exitCode }, "shutdown complete");
    process.exit(exitCode);
  };

  const shutdown = (reason: string, code: number) => {
    if (code !== 0) exitCode = code;
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ reason, workers: Object.keys(cluster.workers ?? {}).length }, "shutting down all workers");
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    if (alive.length === 0) finish();
    for (const w of alive) {
      // A worker still loading may not listen for messages yet: it is asked once it listens.
      if (!listening.has(w)) continue;
      if (w.isConnected()) w.send({ type: SHUTDOWN_MESSAGE });
      else w.process.kill("SIGTERM");
    }
    setTimeout(() => {
      log.error("workers did not exit within the grace period; killing them");
      exitCode = 1;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGKILL");
    }, opts.shutdownGraceMs + 5000).unref();
  };

  // The workers' change-feed messages (src/store/sqlite-feed.ts) go on to every other worker.
  cluster.on("message", (from, m) => {
    if (isFeedMessage(m)) for (const w of Object.values(cluster.workers ?? {})) if (w && w !== from && w.isConnected()) w.send(m);
  });

  cluster.on("listening", (worker, address) => {
    listening.add(worker);
    if (shuttingDown) {
      worker.send({ type: SHUTDOWN_MESSAGE });
      return;
    }
    if (!allListening && listening.size >= opts.workers) {
      allListening = true;
      log.info({ workers: opts.workers, port: address.port }, "convmark listening (all workers)");
    }
  });

  cluster.on("exit", (worker, code, signal) => {
    const wasListening = listening.delete(worker);
    if (shuttingDown) {
      if (code !== 0) exitCode = 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) finish();
      return;
    }
    if (!wasListening && !allListening) {
      // A worker that cannot start (port taken, store unreadable) will not start on a retry either.
      log.error({ pid: worker.process.pid, code, signal }, "a worker failed to start; stopping");
      shutdown("worker failed to start", code && code > 0 ? code : 1);
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && restarts[0]! < now - 60_000) restarts.shift();
    if (restarts.length > (opts.maxRestartsPerMinute ?? 5)) {
      log.error({ pid: worker.process.pid, code, signal }, "workers keep dying; stopping");
      shutdown("workers keep dying", 1);
      return;
    }
    log.error({ pid: worker.process.pid, code, signal }, "a worker died; starting a replacement");
    fork();
  });

  let signals = 0;
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.on(sig, () => {
      if (++signals > 1) {
        log.warn({ signal: sig }, "second signal, killing the workers");
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGKILL");
        process.exit(1);
      }
      shutdown(sig, 0);
    });
  }

  for (let i = 0; i < opts.workers; i++) fork();
}
