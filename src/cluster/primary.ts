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
import { workerExecArgv } from "../server/heap.js";

/** Set by the primary in each worker's environment. */
export const STATE_DIR_ENV = "CONVMARK_CLUSTER_STATE_DIR";
export const SHUTDOWN_MESSAGE = "convmark:shutdown";
export const NONCE_FILE = "nonces.db";

export interface PrimaryOptions {
  readonly workers: number;
  readonly logger: Logger;
  /** Workers get this long to drain after the shutdown request before they are killed. */
  readonly shutdownGraceMs: number;
  /**
   * A worker that dies, or fails to start while another listens, is replaced; more than this many
   * replacements within a minute stop the server. When no worker can start, the server stops.
   */
  readonly maxRestartsPerMinute?: number;
  /** The workers' young generation: --min- and --max-semi-space-size in MiB (src/server/heap.ts); 0: V8's default. */
  readonly semiSpaceMb?: number;
}

export function runPrimary(opts: PrimaryOptions): void {
  const log = opts.logger.child({ role: "primary" });
  const stateDir = mkdtempSync(join(tmpdir(), "convmark-cluster-"));
  // Created here once (schema, WAL) so the workers do not race to set it up.
  openSharedNonceStore(join(stateDir, NONCE_FILE), 1).close();
  openSharedKickList(join(stateDir, NONCE_FILE), 1).close();
  startRateLimiterMaster();
  startMetricsAggregator();
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env["NODE_OPTIONS"], opts.semiSpaceMb ?? 0) });

  const listening = new Set<Worker>();
  const restarts: number[] = [];
  let allListening = false;
  let everListening = false;
  /** The exits of workers that failed to start before any worker listened (pid, code, signal). */
  const failedBeforeAny: object[] = [];
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
    everListening = true;
    if (shuttingDown) {
      worker.send({ type: SHUTDOWN_MESSAGE });
      return;
    }
    // Workers that failed to start before any listened: this one could, so theirs was not a fault
    // of the configuration (port, data directory) that every worker shares; they are replaced.
    for (const failed of failedBeforeAny.splice(0)) replace(failed, "a worker failed to start; starting a replacement now that another listens");
    if (!allListening && listening.size >= opts.workers) {
      allListening = true;
      log.info({ workers: opts.workers, port: address.port }, "convmark listening (all workers)");
    }
  });

  /** A replacement for `worker`, within the restart budget (past it, the server stops). */
  const replace = (exit: object, why: string) => {
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && restarts[0]! < now - 60_000) restarts.shift();
    if (restarts.length > (opts.maxRestartsPerMinute ?? 5)) {
      log.error(exit, "workers keep dying; stopping");
      shutdown("workers keep dying", 1);
      return;
    }
    log.error(exit, why);
    fork();
  };
  // The other workers, not yet exited (a worker may still be in cluster.workers at its own exit).
  const othersAlive = (worker: Worker) => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w !== worker && !w.isDead());

  cluster.on("exit", (worker, code, signal) => {
    const wasListening = listening.delete(worker);
    if (shuttingDown) {
      if (code !== 0) exitCode = 1;
      if (othersAlive(worker).length === 0) finish();
      return;
    }
    const exit = { pid: worker.process.pid, code, signal };
    if (!wasListening && !everListening) {
      // No worker has listened yet. If none can (port taken, data directory unreadable: what they
      // all share), a retry would fail alike: the server stops when the last of them has failed. If
      // another one listens, this failure was this worker's own, and it is replaced then.
      failedBeforeAny.push(exit);
      if (othersAlive(worker).length === 0) {
        log.error(exit, "no worker could start; stopping");
        shutdown("no worker could start", code && code > 0 ? code : 1);
      } else {
        log.error(exit, "a worker failed to start; waiting for the others");
      }
      return;
    }
    replace(exit, wasListening ? "a worker died; starting a replacement" : "a worker failed to start; starting a replacement");
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
