/** OpenIM dialect configuration from the environment (validated with zod at start). */
import { z } from "zod";
import { ConfigError, zodProblems } from "../../config.js";

/** OpenIM's default token policy: config/openim-rpc-auth.yml `tokenPolicy.expire: 90` (days). */
export const OPENIM_DEFAULT_TOKEN_TTL_SECONDS = 90 * 24 * 60 * 60;
/** OpenIM's built-in app administrator (config/share.yml `imAdminUserID`). */
export const OPENIM_DEFAULT_ADMIN_USER_IDS: readonly string[] = ["imAdmin"];
/** userIDs per set_conversations call (OpenIM has no limit; convmark's MarkService allows 20,000 updates). */
export const OPENIM_DEFAULT_MAX_USER_IDS = 1000;

export interface OpenimConfig {
  /** The server's secret; undefined = unconfigured (every call answers with OpenIM's auth error). */
  readonly secret?: string;
  readonly adminUserIds: readonly string[];
  readonly tokenTtlSeconds: number;
  /** Upper bound of userIDs in one set_conversations request (after deduplication). */
  readonly maxUserIds: number;
  /** Calls per second over both endpoints and both transports; 0 = no limit (OpenIM's default). */
  readonly rateLimitPerSecond: number;
}

const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, "must be a non-negative integer")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const EnvSchema = z.object({
  OPENIM_SECRET: z.string().optional(),
  OPENIM_ADMIN_USER_IDS: z.string().optional(),
  OPENIM_TOKEN_TTL_SECONDS: int(1, 10 * 365 * 24 * 3600).optional(),
  OPENIM_MAX_USER_IDS: int(1, 20_000).optional(),
  OPENIM_RATE_LIMIT_PER_SECOND: int(0, 1_000_000).optional(),
});

export function openimConfigFromEnv(env: NodeJS.ProcessEnv): OpenimConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) throw new ConfigError(`invalid OpenIM configuration: ${zodProblems(parsed.error)}`);
  const e = parsed.data;
  let adminUserIds = OPENIM_DEFAULT_ADMIN_USER_IDS;
  if (e.OPENIM_ADMIN_USER_IDS !== undefined) {
    adminUserIds = [...new Set(e.OPENIM_ADMIN_USER_IDS.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
    if (adminUserIds.length === 0) {
      throw new ConfigError("invalid OpenIM configuration: OPENIM_ADMIN_USER_IDS must name at least one user ID (comma-separated)");
    }
  }
  const secret = e.OPENIM_SECRET !== undefined && e.OPENIM_SECRET !== "" ? e.OPENIM_SECRET : undefined;
  return {
    ...(secret !== undefined ? { secret } : {}),
    adminUserIds,
    tokenTtlSeconds: e.OPENIM_TOKEN_TTL_SECONDS ?? OPENIM_DEFAULT_TOKEN_TTL_SECONDS,
    maxUserIds: e.OPENIM_MAX_USER_IDS ?? OPENIM_DEFAULT_MAX_USER_IDS,
    rateLimitPerSecond: e.OPENIM_RATE_LIMIT_PER_SECOND ?? 0,
  };
}
