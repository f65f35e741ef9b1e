/** `convmark serve` / `npm start`: the server in this process, configured from the environment (see README). */
import { pino } from "pino";
import { startConvmark } from "./bootstrap.js";
import { ConfigError } from "./config.js";
import { installShutdownHandlers } from "./server/app.js";

/** Starts convmark and stops it on SIGTERM/SIGINT; a bad configuration exits 2, a failed start 1. */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  try {
    const running = await startConvmark(env);
    installShutdownHandlers(running.app, async () => {
      await running.close();
    }, { logger: running.logger });
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`convmark: ${e.message}`);
      process.exit(2);
    }
    pino().fatal({ err: e }, "convmark failed to start");
    process.exit(1);
  }
}
