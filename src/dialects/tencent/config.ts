/** Tencent dialect configuration from the environment. */
import { z } from "zod";
import { integer, list, optional, parseEnv, text, withDefault } from "../../env.js";

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

const TencentEnv = {
  TENCENT_SDKAPPID: optional(
    z
      .string()
      .trim()
      .regex(/^[0-9]+$/, "must be an unsigned integer (the SDKAppID from the IM console)")
      .transform(Number)
      .pipe(z.number().int().min(1, "must be 1..4294967295").max(4294967295, "must be 1..4294967295")),
  ),
  TENCENT_SECRET_KEY: optional(text),
  TENCENT_ADMIN_IDENTIFIERS: withDefault(list("admin account"), ["administrator"]),
  TENCENT_RATE_LIMIT_PER_SECOND: withDefault(integer(1, 1_000_000), 200),
};

export function tencentConfigFromEnv(env: NodeJS.ProcessEnv): TencentConfig {
  const e = parseEnv(env, TencentEnv, "Tencent configuration");
  return {
    ...(e.TENCENT_SDKAPPID !== undefined ? { sdkAppId: e.TENCENT_SDKAPPID } : {}),
    ...(e.TENCENT_SECRET_KEY !== undefined ? { secretKey: e.TENCENT_SECRET_KEY } : {}),
    adminIdentifiers: e.TENCENT_ADMIN_IDENTIFIERS,
    rateLimitPerSecond: e.TENCENT_RATE_LIMIT_PER_SECOND,
  };
}
