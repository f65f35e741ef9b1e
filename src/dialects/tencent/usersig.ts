/**
 * Tencent's UserSig v2 (TLSSigAPIv2): URL-safe base64 ('+'→'*', '/'→'-', '='→'_') of the zlib-deflated
 * JSON {"TLS.ver":"2.0","TLS.identifier","TLS.sdkappid","TLS.time","TLS.expire","TLS.sig"[,"TLS.userbuf"]},
 * where TLS.sig = base64(HMAC-SHA256(secretKey, "TLS.identifier:<id>\nTLS.sdkappid:<appid>\n
 * TLS.time:<time>\nTLS.expire:<expire>\n"[ + "TLS.userbuf:<b64>\n"])).
 * Reference implementation: https://github.com/tencentyun/tls-sig-api-v2-node (npm tls-sig-api-v2).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { deflateSync, inflateSync } from "node:zlib";
import { withoutStack } from "../../domain/stackless.js";
import { TencentCode } from "./errors.js";

/** Longest UserSig accepted (real ones are ~200-400 characters; a userbuf makes them longer). */
export const MAX_USERSIG_CHARS = 8192;
const MAX_INFLATED_BYTES = 16 * 1024;

export interface UserSigClaims {
  readonly identifier: string;
  readonly sdkAppId: number;
  /** Unix seconds when it was made. */
  readonly time: number;
  /** Validity in seconds from `time`. */
  readonly expire: number;
  readonly userbuf?: string;
}

export type UserSigVerdict =
  | { readonly ok: true; readonly claims: UserSigClaims }
  | { readonly ok: false; readonly code: TencentCode; readonly info: string };

function escape(b64: string): string {
  return b64.replace(/\+/g, "*").replace(/\//g, "-").replace(/=/g, "_");
}

function unescape(s: string): string {
  return s.replace(/\*/g, "+").replace(/-/g, "/").replace(/_/g, "=");
}

function hmacBase64(key: string, c: UserSigClaims): string {
  let content = `TLS.identifier:${c.identifier}\nTLS.sdkappid:${c.sdkAppId}\nTLS.time:${c.time}\nTLS.expire:${c.expire}\n`;
  if (c.userbuf !== undefined) content += `TLS.userbuf:${c.userbuf}\n`;
  return createHmac("sha256", key).update(content, "utf8").digest("base64");
}

/** A non-negative safe integer, given as a JSON number or a string of digits (PHP generators). */
function uint(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && /^[0-9]{1,15}$/.test(v)) return Number(v);
  return undefined;
}

interface Decoded {
  readonly claims: UserSigClaims;
  readonly sig: string;
}

/** Decodes a UserSig without verifying it; a string describes why it cannot be parsed. */
export function decodeUserSig(userSig: string): Decoded | string {
  if (userSig.length === 0) return "usersig is empty";
  if (userSig.length > MAX_USERSIG_CHARS) return `usersig is longer than ${MAX_USERSIG_CHARS} characters`;
  const b64 = unescape(userSig);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return "usersig is not in Tencent's base64 alphabet";
  // Both refusals below are answered to the client (70003), never logged: their errors are made
  // without a stack. zlib's error path reads the stack it is given (node:internal/streams/destroy),
  // which under --enable-source-maps (npm start) maps every frame. Side by side on the fuzz suite's
  // Tencent routes (half of their bodies carry a broken UserSig): 6-10 % less server CPU per body.
  let json: string;
  try {
    json = withoutStack(() => inflateSync(Buffer.from(b64, "base64"), { maxOutputLength: MAX_INFLATED_BYTES })).toString("utf8");
  } catch {
    return "usersig is not zlib-compressed data";
  }
  let doc: unknown;
  try {
    doc = withoutStack(() => JSON.parse(json) as unknown);
  } catch {
    return "usersig does not hold JSON";
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return "usersig does not hold a JSON object";
  const d = doc as Record<string, unknown>;
  if (d["TLS.ver"] !== "2.0") return `unsupported usersig version ${JSON.stringify(d["TLS.ver"])}, expected "2.0"`;
  const identifier = d["TLS.identifier"];
  const sdkAppId = uint(d["TLS.sdkappid"]);
  const time = uint(d["TLS.time"]);
  const expire = uint(d["TLS.expire"]);
  const sig = d["TLS.sig"];
  const userbuf = d["TLS.userbuf"];
  if (typeof identifier !== "string") return "usersig lacks TLS.identifier";
  if (sdkAppId === undefined) return "usersig lacks a valid TLS.sdkappid";
  if (time === undefined) return "usersig lacks a valid TLS.time";
  if (expire === undefined) return "usersig lacks a valid TLS.expire";
  if (typeof sig !== "string" || sig === "") return "usersig lacks TLS.sig";
  if (userbuf !== undefined && typeof userbuf !== "string") return "usersig has an invalid TLS.userbuf";
  return { claims: { identifier, sdkAppId, time, expire, ...(userbuf !== undefined ? { userbuf } : {}) }, sig };
}

export interface VerifyParams {
  /** The SDKAppID of the request (already checked against the configured one). */
  readonly sdkAppId: number;
  /** The identifier of the request. */
  readonly identifier: string;
  readonly secretKey: string;
  readonly nowSeconds: number;
}

/**
 * Verifies a UserSig for the request's identifier and SDKAppID: parse (70003), SDKAppID inside the sig
 * (70014), identifier inside the sig (70013), HMAC with the app's key, compared in constant time (70009),
 * then time + expire > now (70001).
 */
export function verifyUserSig(userSig: string, p: VerifyParams): UserSigVerdict {
  const decoded = decodeUserSig(userSig);
  if (typeof decoded === "string") return { ok: false, code: TencentCode.SigParse, info: `UserSig parse failed: ${decoded}` };
  const { claims, sig } = decoded;
  if (claims.sdkAppId !== p.sdkAppId) {
    return { ok: false, code: TencentCode.SigSdkAppIdMismatch, info: "the SDKAppID of the request differs from the one the UserSig was made for" };
  }
  if (claims.identifier !== p.identifier) {
    return { ok: false, code: TencentCode.SigIdentifierMismatch, info: "the identifier of the request differs from the one the UserSig was made for" };
  }
  const expected = Buffer.from(hmacBase64(p.secretKey, claims), "utf8");
  const given = Buffer.from(sig, "utf8");
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, code: TencentCode.SigVerify, info: "UserSig verification failed: it was not made with this SDKAppID's key" };
  }
  if (claims.time + claims.expire <= p.nowSeconds) {
    return { ok: false, code: TencentCode.SigExpired, info: "UserSig expired, generate a new one" };
  }
  return { ok: true, claims };
}

/** Makes a UserSig exactly as TLSSigAPIv2.genUserSig does (for tools and docs; tests use Tencent's package). */
export function genUserSig(sdkAppId: number, secretKey: string, identifier: string, expireSeconds: number, nowSeconds = Math.floor(Date.now() / 1000)): string {
  const claims: UserSigClaims = { identifier, sdkAppId, time: nowSeconds, expire: expireSeconds };
  const doc = {
    "TLS.ver": "2.0",
    "TLS.identifier": identifier,
    "TLS.sdkappid": sdkAppId,
    "TLS.time": nowSeconds,
    "TLS.expire": expireSeconds,
    "TLS.sig": hmacBase64(secretKey, claims),
  };
  return escape(deflateSync(Buffer.from(JSON.stringify(doc), "utf8")).toString("base64"));
}
