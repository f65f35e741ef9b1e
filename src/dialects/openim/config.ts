/** OpenIM dialect configuration from the environment (validated with zod at start). */
import { integer, list, optional, parseEnv, text, withDefault } from "../../env.js";

/** OpenIM's default token policy: config/openim-rpc-auth.yml `tokenPolicy.expire: 90` (days). */
export const OPENIM_DEFAULT_TOKEN_TTL_SECONDS = 90 * 24 * 60 * 60;
/** OpenIM's built-in app administrator (config/share.yml `imAdminUserID`). */
export const OPENIM_DEFAULT_ADMIN_USER_IDS: readonly string[] = ["imAdmin"];
/** userIDs per set_conversations call (OpenIM has no limit; convmark's MarkService allows 20,000 updates). */
export const OPENIM_DEFAULT_MAX_USER_IDS = 1000;

/** Wrong get_admin_token secrets per client address per minute (OpenIM itself does not throttle them). */
export const OPENIM_DEFAULT_SECRET_FAILURES_PER_MINUTE = 10;

export interface OpenimConfig {
  /** The server's secret; undefined = unconfigured (every call answers with OpenIM's auth error). */
  readonly secret?: string;
  readonly adminUserIds: readonly string[];
  readonly tokenTtlSeconds: number;
  /** Upper bound of userIDs in one set_conversations request (after deduplication). */
  readonly maxUserIds: number;
  /** Calls per second over both endpoints and both transports; 0 = no limit (OpenIM's default). */
  readonly rateLimitPerSecond: number;
  /** Wrong secrets get_admin_token accepts per client address per minute before answering 429. */
  readonly secretFailuresPerMinute: number;
}

const OpenimEnv = {
  OPENIM_SECRET: optional(text),
  OPENIM_ADMIN_USER_IDS: withDefault(list("user ID"), [...OPENIM_DEFAULT_ADMIN_USER_IDS]),
  OPENIM_TOKEN_TTL_SECONDS: withDefault(integer(1, 10 * 365 * 24 * 3600), OPENIM_DEFAULT_TOKEN_TTL_SECONDS),
  OPENIM_MAX_USER_IDS: withDefault(integer(1, 20_000), OPENIM_DEFAULT_MAX_USER_IDS),
  OPENIM_RATE_LIMIT_PER_SECOND: withDefault(integer(0, 1_000_000), 0),
  OPENIM_SECRET_FAILURES_PER_MINUTE: withDefault(integer(1, 1_000_000), OPENIM_DEFAULT_SECRET_FAILURES_PER_MINUTE),
};

export function openimConfigFromEnv(env: NodeJS.ProcessEnv): OpenimConfig {
  const e = parseEnv(env, OpenimEnv, "OpenIM configuration");
  return {
    ...(e.OPENIM_SECRET !== undefined ? { secret: e.OPENIM_SECRET } : {}),
    adminUserIds: e.OPENIM_ADMIN_USER_IDS,
    tokenTtlSeconds: e.OPENIM_TOKEN_TTL_SECONDS,
    maxUserIds: e.OPENIM_MAX_USER_IDS,
    rateLimitPerSecond: e.OPENIM_RATE_LIMIT_PER_SECOND,
    secretFailuresPerMinute: e.OPENIM_SECRET_FAILURES_PER_MINUTE,
  };
}
