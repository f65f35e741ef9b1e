/**
 * Entry point: `npm start`. Configuration comes from the environment (see README). With
 * CONVMARK_WORKERS > 1 (default: one per core) this process becomes the cluster primary and forks
 * the workers that serve; each worker runs this file again.
 */
import cluster from "node:cluster";
import { pino } from "pino";
import { configFromEnv, startConvmark } from "./bootstrap.js";
import { workerCountFromEnv } from "./cluster/config.js";
import { runPrimary, SHUTDOWN_MESSAGE, STATE_DIR_ENV } from "./cluster/primary.js";
import { ConfigError } from "./config.js";
import { installShutdownHandlers } from "./server/app.js";

try {
  if (cluster.isPrimary) {
    // Everything is validated before anything starts: a bad value stops here, not in N workers.
    const config = configFromEnv(process.env);
    const workers = workerCountFromEnv(process.env);
    if (workers > 1) {
      runPrimary({ workers, logger: pino({ level: config.core.logLevel }), shutdownGraceMs: config.core.shutdownGraceMs });
    } else {
      const running = await startConvmark(process.env);
      installShutdownHandlers(running.app, () => running.close(), { logger: running.logger });
    }
  } else {
    const stateDir = process.env[STATE_DIR_ENV];
    if (!stateDir) throw new Error(`cluster worker started without ${STATE_DIR_ENV}`);
    // Listen from the first moment: the primary may ask for the shutdown while this worker still starts.
    let requested: string | undefined;
    let begin: ((reason: string) => void) | undefined;
    const request = (reason: string) => (begin ? begin(reason) : (requested ??= reason));
    process.on("message", (m: unknown) => (m as { type?: unknown } | null)?.type === SHUTDOWN_MESSAGE && request("primary"));
    // The primary is gone (killed): stop serving rather than run on unsupervised.
    process.on("disconnect", () => request("primary disconnected"));
    const running = await startConvmark(process.env, { cluster: { stateDir, workers: workerCountFromEnv(process.env) } });
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
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(`convmark: ${e.message}`);
    process.exit(2);
  }
  pino().fatal({ err: e }, "convmark failed to start");
  process.exit(1);
}
