/** ZEGO dialect configuration from the environment. */
import { z } from "zod";
import { ConfigError, zodProblems } from "../../config.js";

export interface ZegoConfig {
  /** The AppId and ServerSecret callers sign with; absent: the dialect is unconfigured and refuses every call. */
  readonly credentials?: { readonly appId: number; readonly serverSecret: string };
  /** SetConvMark calls per second per AppId (ZEGO: 20). */
  readonly rateLimitPerSecond: number;
}

// An empty variable counts as unset (the usual meaning of `FOO=` in env files).
const blankToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

const EnvSchema = z.object({
  ZEGO_APP_ID: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^\d{1,10}$/, "must be a decimal unsigned 32-bit integer (the AppId of the ZEGO console)")
      .transform(Number)
      .refine((n) => n >= 1 && n <= 0xffff_ffff, "must be in 1..4294967295")
      .optional(),
  ),
  ZEGO_SERVER_SECRET: z.preprocess(blankToUndefined, z.string().optional()),
  ZEGO_RATE_LIMIT_PER_SECOND: z.preprocess(
    blankToUndefined,
    z.coerce.number().int("must be an integer").min(1).max(1_000_000).default(20),
  ),
});

export function zegoConfigFromEnv(env: NodeJS.ProcessEnv): ZegoConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) throw new ConfigError(`invalid ZEGO configuration: ${zodProblems(parsed.error)}`);
  const e = parsed.data;
  if ((e.ZEGO_APP_ID === undefined) !== (e.ZEGO_SERVER_SECRET === undefined)) {
    throw new ConfigError("invalid ZEGO configuration: ZEGO_APP_ID and ZEGO_SERVER_SECRET must be set together (or both left unset)");
  }
  return {
    ...(e.ZEGO_APP_ID !== undefined && e.ZEGO_SERVER_SECRET !== undefined
      ? { credentials: { appId: e.ZEGO_APP_ID, serverSecret: e.ZEGO_SERVER_SECRET } }
      : {}),
    rateLimitPerSecond: e.ZEGO_RATE_LIMIT_PER_SECOND,
  };
}
