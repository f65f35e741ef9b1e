/**
 * ZEGO's server-API authentication (public parameters AppId, SignatureNonce, Timestamp,
 * SignatureVersion=2.0, Signature = hex(md5(AppId + SignatureNonce + ServerSecret + Timestamp))),
 * plus replay protection of SignatureNonce within the accepted timestamp window.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";
import { ZegoCode } from "./codes.js";

/** The public parameters, as strings exactly as received (query string or metadata); absent: undefined. */
export interface ZegoAuthParams {
  readonly appId?: string | undefined;
  readonly signatureNonce?: string | undefined;
  readonly timestamp?: string | undefined;
  readonly signatureVersion?: string | undefined;
  readonly signature?: string | undefined;
}

export interface ZegoError {
  readonly code: number;
  readonly message: string;
}

/** ZEGO accepts a Timestamp at most 10 minutes from the server's clock, either side. */
export const TIMESTAMP_WINDOW_SECONDS = 600;
export const SIGNATURE_VERSION = "2.0";

/** hex(md5(AppId + SignatureNonce + ServerSecret + Timestamp)), lower-case, as ZEGO's samples compute it. */
export function zegoSignature(appId: string | number, signatureNonce: string, serverSecret: string, timestamp: string | number): string {
  return createHash("md5").update(`${appId}${signatureNonce}${serverSecret}${timestamp}`, "utf8").digest("hex");
}

/**
 * How many nonces the replay cache must hold so that none is dropped before its Timestamp leaves the
 * window: a nonce is kept until Timestamp + window (at most 2 x window + 1 s after it was accepted, for
 * a Timestamp a full window ahead), and the per-AppId rate limit (a fixed 1 s window, so any span of
 * n seconds admits at most rate x (n + 1) calls) bounds how many calls are accepted meanwhile.
 */
export function nonceCapacity(rateLimitPerSecond: number): number {
  return rateLimitPerSecond * (2 * TIMESTAMP_WINDOW_SECONDS + 3);
}

/**
 * Nonces of accepted calls, each kept (lru-cache, per-entry TTL) until its call's Timestamp leaves
 * the window; after that the Timestamp alone refuses a replay. Sized by nonceCapacity, so under the
 * rate limit it is never full; if it ever were, new calls are refused rather than old nonces dropped.
 */
export class NonceCache {
  private readonly cache: LRUCache<string, true>;

  constructor(readonly capacity: number, now: () => number) {
    // maxSize (not max) keeps lru-cache from preallocating `capacity` slots up front.
    // ttlResolution 0: read the (injected) clock on every check instead of caching it for a tick.
    this.cache = new LRUCache<string, true>({ maxSize: capacity, sizeCalculation: () => 1, perf: { now }, ttlResolution: 0 });
  }

  get size(): number {
    return this.cache.size;
  }

  /** Whether the nonce is recorded and not expired. */
  has(nonce: string): boolean {
    return this.cache.has(nonce);
  }

  /** Records the nonce for ttlMs: "replay" if it is already recorded, "full" if there is no room. */
  record(nonce: string, ttlMs: number): "recorded" | "replay" | "full" {
    if (this.cache.has(nonce)) return "replay";
    if (this.cache.size >= this.capacity) {
      this.cache.purgeStale();
      if (this.cache.size >= this.capacity) return "full";
    }
    this.cache.set(nonce, true, { ttl: Math.max(1, ttlMs) });
    return "recorded";
  }
}

const UINT32 = /^\d{1,10}$/;
const TIMESTAMP = /^-?\d{1,15}$/;

function safeEqualHex(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(given.toLowerCase(), "utf8");
  if (a.length !== b.length) {
    // Keep the work independent of where a mismatch is; the length of an md5 hex string is public.
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

export interface VerifierOptions {
  /** Absent: unconfigured, every call gets ServerSecretUnavailable. */
  readonly credentials?: { readonly appId: number; readonly serverSecret: string } | undefined;
  readonly now: () => number;
  /** The per-AppId rate limit; sizes the replay cache (nonceCapacity). */
  readonly rateLimitPerSecond: number;
}

/** A correctly signed call; claimNonce() records its nonce (call it once the call is admitted). */
export interface VerifiedCall {
  readonly ok: true;
  readonly appId: number;
  /** Records the nonce; returns the error to answer when it was used meanwhile (or the cache is full). */
  claimNonce(): ZegoError | undefined;
}

const REPLAYED: ZegoError = {
  code: ZegoCode.SignatureExpired,
  message: "signature expired: this SignatureNonce was already used, sign the request again with a new one",
};

/**
 * Checks the public parameters in ZEGO's order of concerns: presence and format, the AppId's secret,
 * the Timestamp window, the signature, then that the nonce is unused. The nonce is recorded only by
 * claimNonce(), so calls refused afterwards (rate limit) leave no trace in the replay cache.
 */
export function createVerifier(opts: VerifierOptions): (p: ZegoAuthParams) => VerifiedCall | { ok: false; error: ZegoError } {
  const nonces = new NonceCache(nonceCapacity(opts.rateLimitPerSecond), opts.now);
  const fail = (code: number, message: string) => ({ ok: false as const, error: { code, message } });
  return (p) => {
    const creds = opts.credentials;
    if (!creds) return fail(ZegoCode.ServerSecretUnavailable, "get ServerSecret failed: the ZEGO dialect is not configured (ZEGO_APP_ID, ZEGO_SERVER_SECRET)");
    const appIdText = p.appId ?? "";
    if (!UINT32.test(appIdText) || Number(appIdText) > 0xffff_ffff) return fail(ZegoCode.AppIdFormat, "AppId field format error");
    if (!p.timestamp) return fail(ZegoCode.TimestampEmpty, "Timestamp field is empty");
    if (!TIMESTAMP.test(p.timestamp)) return fail(ZegoCode.TimestampFormat, "Timestamp field format error");
    if (!p.signatureNonce) return fail(ZegoCode.SignatureNonceEmpty, "SignatureNonce field is empty");
    if (!p.signature) return fail(ZegoCode.SignatureEmpty, "Signature field is empty");
    if (!p.signatureVersion) return fail(ZegoCode.SignatureVersionEmpty, "SignatureVersion field is empty");
    if (p.signatureVersion !== SIGNATURE_VERSION) return fail(ZegoCode.SignatureVersionUnsupported, `unsupported SignatureVersion ${JSON.stringify(p.signatureVersion)}, only 2.0`);
    const appId = Number(appIdText);
    if (appId !== creds.appId) return fail(ZegoCode.ServerSecretUnavailable, `get ServerSecret failed: unknown AppId ${appId}`);
    const nowMs = opts.now();
    const ts = Number(p.timestamp);
    if (Math.abs(nowMs / 1000 - ts) > TIMESTAMP_WINDOW_SECONDS) return fail(ZegoCode.SignatureExpired, "signature expired: Timestamp is more than 10 minutes from the server time");
    const expected = zegoSignature(appIdText, p.signatureNonce, creds.serverSecret, p.timestamp);
    if (!safeEqualHex(expected, p.signature)) return fail(ZegoCode.SignatureInvalid, "signature error");
    // A signed nonce is at most a URL long; a digest keeps every entry small.
    const key = createHash("sha256").update(`${appId}:${p.signatureNonce}`, "utf8").digest("base64");
    if (nonces.has(key)) return { ok: false, error: REPLAYED };
    // Kept until the Timestamp leaves the window, plus a second for the rounding of the check above.
    const ttlMs = (ts + TIMESTAMP_WINDOW_SECONDS + 1) * 1000 - nowMs;
    return {
      ok: true,
      appId,
      claimNonce() {
        switch (nonces.record(key, ttlMs)) {
          case "recorded":
            return undefined;
          case "replay":
            return REPLAYED;
          case "full":
            return { code: ZegoCode.AppRateLimited, message: "too many calls within the Timestamp window, please retry later" };
        }
      },
    };
  };
}
