/** CONVMARK_WORKERS: how many server processes share the port (default one per core; 1 = no cluster). */
import { availableParallelism } from "node:os";
import { z } from "zod";
import { ConfigError, zodProblems } from "../config.js";

export const MAX_WORKERS = 64;

const Schema = z.object({
  CONVMARK_WORKERS: z.coerce.number().int().min(1).max(MAX_WORKERS).optional(),
});

/** Workers to run: CONVMARK_WORKERS, else one per available core (at most MAX_WORKERS). */
export function workerCountFromEnv(env: NodeJS.ProcessEnv): number {
  const parsed = Schema.safeParse({ CONVMARK_WORKERS: env["CONVMARK_WORKERS"] === "" ? undefined : env["CONVMARK_WORKERS"] });
  if (!parsed.success) throw new ConfigError(`invalid configuration: ${zodProblems(parsed.error)}`);
  return parsed.data.CONVMARK_WORKERS ?? Math.min(MAX_WORKERS, Math.max(1, availableParallelism()));
}
