/**
 * CORS for the unified API: the methods and headers Connect, gRPC-Web and the REST routes need
 * (connect-es's `cors` lists) plus `authorization`; preflights answered here and cached by browsers.
 */
import { cors as connectCors } from "@connectrpc/connect";
import { z } from "zod";
import { optional, parseEnv } from "../env.js";
import type { NodeHandlerFn } from "./listener.js";

export interface CorsConfig {
  /** Allowed origins ("scheme://host[:port]"), or "*" for any; empty: CORS off. */
  readonly origins: readonly string[] | "*";
  /** Access-Control-Max-Age of preflights, seconds. */
  readonly maxAgeSec: number;
}

const ORIGIN = /^https?:\/\/[^/?#\s]+$/;

export function corsConfigFromEnv(env: NodeJS.ProcessEnv): CorsConfig {
  const e = parseEnv(env, {
    CONVMARK_CORS_ORIGINS: optional(
      z
        .string()
        .transform((s) => s.split(",").map((x) => x.trim()).filter((x) => x !== ""))
        .refine((l) => l.length === 1 || !l.includes("*"), '"*" stands alone')
        .refine((l) => l.every((o) => o === "*" || (ORIGIN.test(o) && new URL(o).origin === o.toLowerCase())), {
          message: 'each origin must be "http(s)://host[:port]" with no path or trailing slash (or "*" alone)',
        }),
    ),
  });
  const list = e.CONVMARK_CORS_ORIGINS ?? [];
  return { origins: list.length === 1 && list[0] === "*" ? "*" : list.map((o) => o.toLowerCase()), maxAgeSec: 7200 };
}

const ALLOW_METHODS = [...new Set([...connectCors.allowedMethods, "GET", "POST", "PUT", "PATCH", "DELETE"])].join(", ");
const ALLOW_HEADERS = [...new Set([...connectCors.allowedHeaders, "Authorization"])].join(", ");
const EXPOSE_HEADERS = [...new Set([...connectCors.exposedHeaders, "Allow"])].join(", ");

/** Wraps a handler with CORS; with no origins configured it returns the handler unchanged. */
export function withCors(next: NodeHandlerFn, config: CorsConfig): NodeHandlerFn {
  if (config.origins !== "*" && config.origins.length === 0) return next;
  const allowed = config.origins === "*" ? undefined : new Set(config.origins);
  return (req, res) => {
    const origin = req.headers.origin;
    if (typeof origin !== "string") return next(req, res);
    const ok = allowed === undefined || allowed.has(origin.toLowerCase());
    const preflight = req.method === "OPTIONS" && typeof req.headers["access-control-request-method"] === "string";
    res.setHeader("Vary", "Origin");
    if (preflight) {
      if (!ok) {
        res.writeHead(403, { "content-type": "text/plain" });
        res.end(`origin ${origin} is not allowed (CONVMARK_CORS_ORIGINS)\n`);
        return;
      }
      res.writeHead(204, {
        "access-control-allow-origin": allowed === undefined ? "*" : origin,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": String(config.maxAgeSec),
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      });
      res.end();
      return;
    }
    if (ok) {
      res.setHeader("Access-Control-Allow-Origin", allowed === undefined ? "*" : origin);
      res.setHeader("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    }
    next(req, res);
  };
}
