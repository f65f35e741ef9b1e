import { z } from "zod";
import { ConfigError, zodProblems } from "../config.js";

export interface DirectoryConfig {
  /** CONVMARK_STRICT_DIRECTORY: refuse users, groups and memberships the directory does not know. */
  readonly strict: boolean;
}

// Exact spellings only (case-insensitive, surrounding blanks ignored); unset or empty means off.
const StrictSchema = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.enum(["", "1", "true", "0", "false"], { errorMap: () => ({ message: 'must be "1", "true", "0" or "false"' }) }))
  .optional();

export function directoryConfigFromEnv(env: NodeJS.ProcessEnv): DirectoryConfig {
  const parsed = z.object({ CONVMARK_STRICT_DIRECTORY: StrictSchema }).safeParse(env);
  if (!parsed.success) throw new ConfigError(`invalid configuration: ${zodProblems(parsed.error)}`);
  const v = parsed.data.CONVMARK_STRICT_DIRECTORY;
  return { strict: v === "1" || v === "true" };
}
