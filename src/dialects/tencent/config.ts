/** Tencent dialect configuration from the environment. */
import { z } from "zod";
import { ConfigError, zodProblems } from "../../config.js";

export interface TencentConfig {
  /** The SDKAppID requests must carry; absent: unconfigured (every call gets an auth error). */
  readonly sdkAppId?: number;
  /** The app's secret key (UserSig HMAC key); absent: unconfigured. */
  readonly secretKey?: string;
  /** App admin accounts allowed to call the REST API. */
  readonly adminIdentifiers: readonly string[];
  /** Calls per second per SDKAppID. */
  readonly rateLimitPerSecond: number;
}

const emptyAsUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

const EnvSchema = z.object({
  TENCENT_SDKAPPID: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .trim()
      .regex(/^[0-9]+$/, "must be an unsigned integer (the SDKAppID from the IM console)")
      .transform(Number)
      .pipe(z.number().int().min(1, "must be 1..4294967295").max(4294967295, "must be 1..4294967295"))
      .optional(),
  ),
  TENCENT_SECRET_KEY: z.preprocess(emptyAsUndefined, z.string().optional()),
  TENCENT_ADMIN_IDENTIFIERS: z
    .string()
    .default("administrator")
    .transform((s) => s.split(",").map((x) => x.trim()).filter((x) => x !== ""))
    .pipe(z.array(z.string()).min(1, "must name at least one admin account")),
  TENCENT_RATE_LIMIT_PER_SECOND: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().int("must be an integer").min(1).max(1_000_000).default(200),
  ),
});

export function tencentConfigFromEnv(env: NodeJS.ProcessEnv): TencentConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) throw new ConfigError(`invalid Tencent configuration: ${zodProblems(parsed.error)}`);
  const e = parsed.data;
  return {
    ...(e.TENCENT_SDKAPPID !== undefined ? { sdkAppId: e.TENCENT_SDKAPPID } : {}),
    ...(e.TENCENT_SECRET_KEY !== undefined ? { secretKey: e.TENCENT_SECRET_KEY } : {}),
    adminIdentifiers: e.TENCENT_ADMIN_IDENTIFIERS,
    rateLimitPerSecond: e.TENCENT_RATE_LIMIT_PER_SECOND,
  };
}
