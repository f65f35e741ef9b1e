/**
 * The dialect kernel: one pipeline for every vendor call, REST or gRPC/Connect.
 *
 *   route → authenticate → rate-limit → load the request (REST reads the body only now) → parse into
 *   the vendor proto message → the operation (vendor checks, one MarkService call in process, map each
 *   result) → the vendor's envelope. Never a throw: every outcome is the vendor's own error shape.
 *
 * A vendor supplies its auth, its error constructors (body problems, parse errors, rate limit,
 * internal error) and its operations; the kernel owns the order and the failure handling.
 */
import { ScalarType, fromJson, toJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import { RateLimiterRes } from "rate-limiter-flexible";
import { createRateLimiter } from "../cluster/rate-limit.js";
import { withoutStack } from "../domain/stackless.js";
import type { GatewayRequest } from "./dialect.js";
import { readJsonBody, type BodyResult } from "./http.js";

/** Outcome of one rate-limit check. */
export type RateVerdict = "ok" | "limited" | "error";
/** Consumes one call for `key`. */
export type RateLimit = (key: string) => Promise<RateVerdict>;

/**
 * THE rate-limit factory of every dialect. Cluster-wide in a cluster worker (the primary counts,
 * src/cluster/rate-limit.ts), in memory in a single process. `perSecond` 0 disables the limit.
 */
export function createRateLimit(name: string, perSecond: number): RateLimit {
  if (perSecond <= 0) return () => Promise.resolve("ok");
  const limiter = createRateLimiter({ points: perSecond, durationSeconds: 1, keyPrefix: name });
  return async (key) => {
    try {
      await limiter.consume(key, 1);
      return "ok";
    } catch (e) {
      return e instanceof RateLimiterRes ? "limited" : "error";
    }
  };
}

/**
 * THE credential cache of every dialect: a credential (an OpenIM token, a Tencent UserSig) that was
 * verified in full is remembered, so the next call with the same string skips the expensive part
 * (OpenIM: the JWT signature, ~120 µs; Tencent: zlib, JSON and the HMAC, ~11 µs). Rules:
 * - only what `verify` accepted is cached (a refused credential is verified in full every time);
 * - a cached value is used only while `stillValid` holds for this call (expiry, the request's
 *   identifier...); otherwise the credential is verified in full again, so the answer (the error
 *   code) is exactly the uncached one. What is not part of the credential (OpenIM's kick list, the
 *   admin list) stays the caller's check, made on every call;
 * - bounded by entries and by the characters of the credentials it holds.
 * ZEGO signatures are per request (nonce, timestamp): nothing to cache.
 */
export interface CredentialCache<V extends object> {
  /** `verify`'s answer for `credential`, or the cached verified value while `stillValid` holds. */
  check<E>(credential: string, stillValid: (v: V) => boolean, verify: () => V | E, verified: (r: V | E) => r is V): V | E;
  /** The same with an asynchronous `verify`. */
  checkAsync<E>(credential: string, stillValid: (v: V) => boolean, verify: () => Promise<V | E>, verified: (r: V | E) => r is V): Promise<V | E>;
  /** Credentials held (for tests). */
  readonly size: number;
}

export function createCredentialCache<V extends object>(opts: { readonly max?: number; readonly maxChars?: number } = {}): CredentialCache<V> {
  const lru = new LRUCache<string, V>({ max: opts.max ?? 10_000, maxSize: opts.maxChars ?? 4_000_000, sizeCalculation: (_v, k) => k.length + 1 });
  const cached = (credential: string, stillValid: (v: V) => boolean) => {
    const v = lru.get(credential);
    return v !== undefined && stillValid(v) ? v : undefined;
  };
  return {
    check(credential, stillValid, verify, verified) {
      const hit = cached(credential, stillValid);
      if (hit) return hit;
      const r = verify();
      if (verified(r)) lru.set(credential, r);
      return r;
    },
    async checkAsync(credential, stillValid, verify, verified) {
      const hit = cached(credential, stillValid);
      if (hit) return hit;
      const r = await verify();
      if (verified(r)) lru.set(credential, r);
      return r;
    },
    get size() {
      return lru.size;
    },
  };
}

/**
 * A domain failure printed with the vendor's field name: "<vendorField> <problem>" when the failure
 * names a field the table knows, else the failure's own message.
 */
export function vendorMessage(f: { readonly message: string; readonly field?: string | undefined; readonly problem?: string | undefined }, names: Readonly<Record<string, string>>): string {
  if (f.field === undefined || f.problem === undefined) return f.message;
  const name = names[f.field];
  return name === undefined ? f.message : `${name} ${f.problem}`;
}

/** What a vendor plugs into the kernel. `E` is the vendor's error value. */
export interface VendorSpec<A, C, E> {
  readonly name: string;
  readonly logger: Logger;
  authenticate(auth: A): Promise<C | E> | C | E;
  isError(x: unknown): x is E;
  /** The key calls are counted under (the AppId, SDKAppID, ...). */
  rateKey(caller: C): string;
  readonly rateLimit: RateLimit;
  limited(): E;
  /** After the rate limit, before the body: a last admission check (ZEGO records the nonce here). */
  admit?(caller: C): E | undefined;
  /** A body that could not be read or is not JSON. */
  bodyError(problem: Exclude<BodyResult, { ok: true }>["problem"], message: string): E;
  /** JSON that does not fit the vendor's request message. */
  parseError(message: string): E;
  /** MarkService refused the whole call with INVALID_ARGUMENT. */
  invalid(message: string): E;
  internal(): E;
}

/** Loads the vendor request: REST parses the body, gRPC/Connect already has the message. */
export type Load<R> = () => Promise<R | { readonly bodyError: Exclude<BodyResult, { ok: true }> } | { readonly parseError: string }>;

/**
 * Runs one call through the pipeline. `run` gets the caller and the parsed request and returns the
 * vendor response or a vendor error; whatever it throws becomes the vendor's invalid/internal error.
 */
export async function runCall<A, C, E, R, P>(spec: VendorSpec<A, C, E>, auth: A, load: Load<R>, run: (caller: C, req: R) => Promise<P | E>): Promise<P | E> {
  try {
    const caller = await spec.authenticate(auth);
    if (spec.isError(caller)) return caller;
    const verdict = await spec.rateLimit(spec.rateKey(caller as C));
    if (verdict === "limited") return spec.limited();
    if (verdict === "error") {
      spec.logger.error({ dialect: spec.name }, "rate limiter failed");
      return spec.internal();
    }
    const refused = spec.admit?.(caller as C);
    if (refused !== undefined) return refused;
    const loaded = await load();
    if (typeof loaded === "object" && loaded !== null && "bodyError" in loaded) {
      const b = (loaded as { bodyError: Exclude<BodyResult, { ok: true }> }).bodyError;
      return spec.bodyError(b.problem, b.message);
    }
    if (typeof loaded === "object" && loaded !== null && "parseError" in loaded) {
      return spec.parseError((loaded as { parseError: string }).parseError);
    }
    return await run(caller as C, loaded as R);
  } catch (err) {
    const ce = ConnectError.from(err);
    if (ce.code === Code.InvalidArgument) return spec.invalid(ce.rawMessage);
    spec.logger.error({ err, dialect: spec.name }, "dialect call failed");
    return spec.internal();
  }
}

export interface ParseOptions {
  /** What a JSON `null` body means (Go's encoding/json: a no-op into a struct, i.e. `{}`). */
  readonly nullAsEmpty?: boolean;
  /** Rewrites the parsed JSON object before the proto parser sees it (e.g. case-insensitive names). */
  readonly normalize?: (json: JsonObject) => JsonObject;
}

/** The REST loader: reads the body (call it only after auth), parses it into `schema`. */
export function bodyLoader<D extends DescMessage>(req: GatewayRequest, schema: D, maxBytes: number, opts: ParseOptions = {}): Load<MessageShape<D>> {
  return async () => {
    const body = await readJsonBody(req, maxBytes);
    if (!body.ok) return { bodyError: body };
    return parseInto(schema, body.json, opts);
  };
}

/** Parses JSON into a vendor message; wrong shapes and types are a parseError, never a throw. */
export function parseInto<D extends DescMessage>(schema: D, json: unknown, opts: ParseOptions = {}): MessageShape<D> | { parseError: string } {
  const value = json === null && opts.nullAsEmpty ? {} : json;
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { parseError: "the request body must be a JSON object" };
  try {
    const obj = opts.normalize ? opts.normalize(value as JsonObject) : (value as JsonObject);
    // protobuf-es's FieldErrors are answered to the client as the parseError, never logged: no stacks.
    return withoutStack(() => fromJson(schema, obj as JsonValue, { ignoreUnknownFields: true }));
  } catch (e) {
    return { parseError: `invalid request body: ${(e as Error).message}` };
  }
}

interface NameTable {
  readonly byLower: ReadonlyMap<string, { readonly jsonName: string; readonly message?: DescMessage; readonly list: boolean }>;
  readonly exact: ReadonlySet<string>;
}
/** Each schema's name table, built once (schemas are the generated, immutable descriptors). */
const nameTables = new WeakMap<DescMessage, NameTable>();

function nameTable(schema: DescMessage): NameTable {
  let t = nameTables.get(schema);
  if (t) return t;
  const byLower = new Map<string, { jsonName: string; message?: DescMessage; list: boolean }>();
  for (const f of schema.fields) {
    const message = f.fieldKind === "message" ? f.message : f.fieldKind === "list" && f.listKind === "message" ? f.message : undefined;
    byLower.set(f.jsonName.toLowerCase(), { jsonName: f.jsonName, ...(message ? { message } : {}), list: f.fieldKind === "list" });
  }
  t = { byLower, exact: new Set(schema.fields.map((f) => f.jsonName)) };
  nameTables.set(schema, t);
  return t;
}

/**
 * Go's encoding/json matches object keys to struct fields case-insensitively (exact match first).
 * Rewrites the keys of `json` (recursively, through `schema`'s message fields) to the schema's JSON
 * names when they match one case-insensitively, so `userId` works like `userID`.
 */
export function foldJsonNames(schema: DescMessage, json: JsonObject): JsonObject {
  const { byLower, exact } = nameTable(schema);
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(json)) {
    const hit = byLower.get(k.toLowerCase());
    const name = exact.has(k) ? k : hit?.jsonName ?? k;
    // An exact key wins over a case-folded one, as in encoding/json.
    if (name !== k && Object.prototype.hasOwnProperty.call(json, name)) continue;
    let value = v;
    if (hit?.message && v !== null && typeof v === "object") {
      value = Array.isArray(v)
        ? v.map((x) => (x !== null && typeof x === "object" && !Array.isArray(x) ? foldJsonNames(hit.message!, x as JsonObject) : x))
        : foldJsonNames(hit.message, v as JsonObject);
    }
    out[name] = value as JsonValue;
  }
  return out;
}

const INT64_TYPES = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

/**
 * A vendor response as the vendors print JSON: every field, zeros included, 64-bit integers as JSON
 * numbers (the vendors' servers are Go/C++ JSON encoders, not proto3 JSON). Lists named in
 * `omitEmpty` are left out when empty (Tencent omits an empty ContactGroupId). One toJson of the
 * whole message, then one walk of its JSON through the schema.
 */
export function printJson(schema: DescMessage, message: MessageShape<DescMessage>, omitEmpty: ReadonlySet<string> = NO_NAMES): JsonObject {
  const json = toJson(schema, message, { alwaysEmitImplicit: true }) as JsonObject;
  goNumbers(schema, json, omitEmpty);
  return json;
}

const NO_NAMES: ReadonlySet<string> = new Set();
/** google.protobuf types print as their own JSON (a Struct's keys are not field names). */
const isWellKnown = (m: DescMessage) => m.typeName.startsWith("google.protobuf.");

/** The fields printJson rewrites (64-bit integers, messages, lists), per schema, found once. */
const rewrittenFields = new WeakMap<DescMessage, readonly DescField[]>();

function goNumbers(schema: DescMessage, json: JsonObject, omitEmpty: ReadonlySet<string>): void {
  let fields = rewrittenFields.get(schema);
  if (!fields) {
    fields = schema.fields.filter((f) => f.fieldKind === "message" || f.fieldKind === "list" || (f.fieldKind === "scalar" && INT64_TYPES.has(f.scalar)));
    rewrittenFields.set(schema, fields);
  }
  for (const f of fields) {
    const v = json[f.jsonName];
    if (v === undefined || v === null) continue;
    if (f.fieldKind === "scalar") {
      if (typeof v === "string") json[f.jsonName] = Number(v);
    } else if (f.fieldKind === "message") {
      if (typeof v === "object" && !Array.isArray(v) && !isWellKnown(f.message)) goNumbers(f.message, v, omitEmpty);
    } else if (f.fieldKind === "list" && Array.isArray(v)) {
      if (v.length === 0 && omitEmpty.has(f.jsonName)) delete json[f.jsonName];
      else if (f.listKind === "message") {
        if (!isWellKnown(f.message)) for (const m of v) if (m !== null && typeof m === "object" && !Array.isArray(m)) goNumbers(f.message, m, omitEmpty);
      } else if (f.listKind === "scalar" && INT64_TYPES.has(f.scalar)) json[f.jsonName] = v.map((x) => (typeof x === "string" ? Number(x) : x));
    }
  }
}
