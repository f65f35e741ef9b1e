/**
 * ZEGO's server-API authentication (public parameters AppId, SignatureNonce, Timestamp,
 * SignatureVersion=2.0, Signature = hex(md5(AppId + SignatureNonce + ServerSecret + Timestamp))),
 * plus replay protection of SignatureNonce within the accepted timestamp window.
 */
import type { NonceRegistry } from "../../cluster/nonce-store.js";
import { createHash, timingSafeEqual } from "node:crypto";
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
 * Nonces seen within the window, each kept until its request's Timestamp leaves the window (after
 * that the Timestamp alone rejects a replay). Bounded: past maxEntries the oldest entries are dropped
 * (see docs/dialects/zego.md); every entry costs one Map slot.
 */
export class NonceCache {
  private readonly entries = new Map<string, number>();
  private lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** Records the nonce until expiresAtMs; returns false when it is already recorded and not expired. */
  checkAndRecord(nonce: string, expiresAtMs: number, nowMs: number): boolean {
    this.prune(nowMs);
    const seen = this.entries.get(nonce);
    if (seen !== undefined && seen > nowMs) return false;
    this.entries.delete(nonce);
    this.entries.set(nonce, expiresAtMs);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return true;
  }

  // Entries are in insertion order and expiries within ±window of insertion, so dropping expired
  // ones from the front until the first live one keeps the map close to the live set; a full sweep
  // runs (at most once a second) when the map has grown past half its bound.
  private prune(nowMs: number): void {
    for (const [k, exp] of this.entries) {
      if (exp > nowMs) break;
      this.entries.delete(k);
    }
    if (this.entries.size > this.maxEntries / 2 && nowMs - this.lastSweepMs >= 1000) {
      this.lastSweepMs = nowMs;
      for (const [k, exp] of this.entries) if (exp <= nowMs) this.entries.delete(k);
    }
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
  readonly maxNonces?: number;
  /** Where nonces are recorded; default an in-memory NonceCache of maxNonces entries. */
  readonly nonces?: NonceRegistry;
}

/**
 * Checks the public parameters in ZEGO's order of concerns: presence and format, the AppId's secret,
 * the Timestamp window, the signature, then the nonce (recorded only for a correctly signed call).
 * Returns the AppId on success.
 */
export function createVerifier(opts: VerifierOptions): (p: ZegoAuthParams) => { ok: true; appId: number } | { ok: false; error: ZegoError } {
  const nonces: NonceRegistry = opts.nonces ?? new NonceCache(opts.maxNonces ?? 100_000);
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
    const expiresAtMs = (ts + TIMESTAMP_WINDOW_SECONDS) * 1000 + 1000;
    if (!nonces.checkAndRecord(`${appId}:${p.signatureNonce}`, expiresAtMs, nowMs)) {
      return fail(ZegoCode.SignatureExpired, "signature expired: this SignatureNonce was already used, sign the request again with a new one");
    }
    return { ok: true, appId };
  };
}
