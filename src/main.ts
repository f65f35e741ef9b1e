/** Entry point: `npm start`. Configuration comes from the environment (see README). */
import { pino } from "pino";
import { ConfigError } from "./config.js";
import { startConvmark } from "./bootstrap.js";
import { installShutdownHandlers } from "./server/app.js";

try {
  const running = await startConvmark(process.env);
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
