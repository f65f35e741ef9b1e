/**
 * `convmark serve` / `npm start`: the server, configured from the environment (see README). With
 * CONVMARK_WORKERS > 1 (default: one per core) this process becomes the cluster primary and forks
 * the workers that serve; each worker runs the same entry point again and lands in `serveWorker`.
 */
import cluster from "node:cluster";
import { pino } from "pino";
import { configFromEnv, startConvmark } from "./bootstrap.js";
import { workerCountFromEnv } from "./cluster/config.js";
import { runPrimary, SHUTDOWN_MESSAGE, STATE_DIR_ENV } from "./cluster/primary.js";
import { ConfigError } from "./config.js";
import { installShutdownHandlers } from "./server/app.js";
import { startIdleCompaction } from "./server/heap.js";
import { createProcessLogger } from "./server/start-log.js";

/** Starts convmark and stops it on SIGTERM/SIGINT; a bad configuration exits 2, a failed start 1. */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  try {
    if (!cluster.isPrimary) return await serveWorker(env);
    // Everything is validated before anything starts: a bad value stops here, not in N workers.
    const config = configFromEnv(env);
    const workers = workerCountFromEnv(env);
    if (workers > 1) {
      runPrimary({
        workers,
        logger: createProcessLogger(config.core.logLevel),
        shutdownGraceMs: config.core.shutdownGraceMs,
        semiSpaceMb: config.core.heap.semiSpaceMb,
      });
      return;
    }
    const running = await startConvmark(env);
    compactWhenIdle(running);
    installShutdownHandlers(running.app, () => running.close(), { logger: running.logger });
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`convmark: ${e.message}`);
      process.exit(2);
    }
    pino().fatal({ err: e }, "convmark failed to start");
    process.exit(1);
  }
}

/** The serving process's idle compaction (src/server/heap.ts), logged at debug level; its timer does not keep the process alive. */
function compactWhenIdle(running: Awaited<ReturnType<typeof startConvmark>>): void {
  startIdleCompaction({
    growthBytes: running.config.heap.idleCompactMb * 2 ** 20,
    onCompact: ({ beforeBytes, afterBytes, ms }) =>
      running.logger.debug({ heapBeforeMb: Math.round(beforeBytes / 2 ** 20), heapAfterMb: Math.round(afterBytes / 2 ** 20), ms: Math.round(ms) }, "idle heap compaction"),
    onError: (e) => running.logger.warn({ err: e }, "idle heap compaction is not available; it stays off"),
  });
}

async function serveWorker(env: NodeJS.ProcessEnv): Promise<void> {
  const stateDir = env[STATE_DIR_ENV];
  if (!stateDir) throw new Error(`cluster worker started without ${STATE_DIR_ENV}`);
  // Listen from the first moment: the primary may ask for the shutdown while this worker still starts.
  let requested: string | undefined;
  let begin: ((reason: string) => void) | undefined;
  const request = (reason: string) => (begin ? begin(reason) : (requested ??= reason));
  process.on("message", (m: unknown) => (m as { type?: unknown } | null)?.type === SHUTDOWN_MESSAGE && request("primary"));
  // The primary is gone (killed): stop serving rather than run on unsupervised.
  process.on("disconnect", () => request("primary disconnected"));
  const running = await startConvmark(env, { cluster: { stateDir, workers: workerCountFromEnv(env) } });
  compactWhenIdle(running);
  installShutdownHandlers(running.app, () => running.close(), {
    logger: running.logger,
    triggers: [
      (start) => {
        begin = start;
        if (requested) start(requested);
      },
    ],
  });
}
