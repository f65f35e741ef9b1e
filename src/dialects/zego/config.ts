/** ZEGO dialect configuration from the environment. */
import { z } from "zod";
import { ConfigError, integer, optional, parseEnv, text, withDefault } from "../../env.js";

export interface ZegoConfig {
  /** The AppId and ServerSecret callers sign with; absent: the dialect is unconfigured and refuses every call. */
  readonly credentials?: { readonly appId: number; readonly serverSecret: string };
  /** SetConvMark calls per second per AppId (ZEGO: 20). */
  readonly rateLimitPerSecond: number;
}

/**
 * Largest ZEGO_RATE_LIMIT_PER_SECOND: the replay cache holds every nonce accepted within the
 * Timestamp window (nonceCapacity = rate x 1203), a few hundred bytes each. ZEGO's own limit is 20.
 */
export const ZEGO_MAX_RATE_LIMIT_PER_SECOND = 1000;

const ZegoEnv = {
  ZEGO_APP_ID: optional(
    z
      .string()
      .trim()
      .regex(/^\d{1,10}$/, "must be a decimal unsigned 32-bit integer (the AppId of the ZEGO console)")
      .transform(Number)
      .refine((n) => n >= 1 && n <= 0xffff_ffff, "must be in 1..4294967295"),
  ),
  ZEGO_SERVER_SECRET: optional(text),
  ZEGO_RATE_LIMIT_PER_SECOND: withDefault(integer(1, ZEGO_MAX_RATE_LIMIT_PER_SECOND), 20),
};

export function zegoConfigFromEnv(env: NodeJS.ProcessEnv): ZegoConfig {
  const e = parseEnv(env, ZegoEnv, "ZEGO configuration");
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
