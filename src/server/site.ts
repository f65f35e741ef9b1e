/**
 * The human-facing routes on the shared port: `GET /` (a short landing page) and `/console/*`
 * (the built console, dist/console). Everything else, including ZEGO's `POST /?Action=…`, falls through.
 */
import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import { basename, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { NodeServerRequest, NodeServerResponse } from "./listener.js";

/** Where `npm run build` puts the console, found from this module's own location (src/ or dist/src/). */
export function defaultConsoleDir(): string {
  const base = fileURLToPath(new URL("../../", import.meta.url));
  return basename(resolve(base)) === "dist" ? join(base, "console") : join(base, "dist", "console");
}

/** The source tree's root (README.md, docs/), from src/ or dist/src/. */
function packageRoot(): string {
  const base = resolve(fileURLToPath(new URL("../../", import.meta.url)));
  return basename(base) === "dist" ? resolve(base, "..") : base;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
} as const;

export interface SiteOptions {
  /** Directory of the built console; default defaultConsoleDir(). */
  consoleDir?: string;
  /** The whole server's health status name (SERVING, NOT_SERVING…), answered at GET /healthz. */
  health?: () => string;
}

export type SiteHandler = (req: NodeServerRequest, res: NodeServerResponse, url: URL) => boolean;

/** Returns a handler that answers `GET /` and `/console…`, and returns false for anything else. */
export function createSite(opts: SiteOptions = {}): SiteHandler {
  const root = resolve(opts.consoleDir ?? defaultConsoleDir());
  const docsRoot = packageRoot();
  return (req, res, url) => {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") return false;
    if (url.pathname === "/") {
      // A GET with ZEGO's Action parameter is ZEGO's business (it answers its own error), not ours.
      if (url.searchParams.has("Action")) return false;
      send(res, method, 200, TYPES[".html"]!, LANDING_PAGE);
      return true;
    }
    if (url.pathname === "/healthz" && opts.health) {
      const status = opts.health();
      send(res, method, status === "SERVING" ? 200 : 503, TYPES[".txt"]!, `${status}\n`);
      return true;
    }
    if (url.pathname === "/docs" || url.pathname.startsWith("/docs/")) {
      serveDoc(docsRoot, url.pathname, method, res);
      return true;
    }
    if (url.pathname !== "/console" && !url.pathname.startsWith("/console/")) return false;
    serveConsole(root, url.pathname, method, res);
    return true;
  };
}

function send(res: NodeServerResponse, method: string, status: number, type: string, body: string): void {
  const buf = Buffer.from(body);
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": type, "content-length": buf.length, "cache-control": "no-cache" });
  if (method === "HEAD") res.end();
  else res.end(buf);
}

function serveConsole(root: string, pathname: string, method: string, res: NodeServerResponse): void {
  const index = join(root, "index.html");
  if (!existsSync(index)) {
    send(res, method, 503, TYPES[".html"]!, page("Console not built", "<p>The console has not been built. Run <code>npm run build</code> and restart convmark.</p>"));
    return;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(pathname.slice("/console".length));
  } catch {
    send(res, method, 400, TYPES[".txt"]!, "bad path\n");
    return;
  }
  const target = normalize(join(root, rel));
  if (target !== root && !target.startsWith(root + sep)) {
    send(res, method, 404, TYPES[".txt"]!, "not found\n");
    return;
  }
  let file = target;
  let isFile = false;
  try {
    isFile = statSync(target).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile) {
    // Paths without a file extension are console views (deep links); anything else is missing.
    if (extname(target) !== "") {
      send(res, method, 404, TYPES[".txt"]!, "not found\n");
      return;
    }
    file = index;
  }
  const size = statSync(file).size;
  // Hashed assets never change; the page itself is revalidated.
  const immutable = file.includes(`${sep}assets${sep}`);
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    "content-type": TYPES[extname(file)] ?? "application/octet-stream",
    "content-length": size,
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
  });
  if (method === "HEAD") {
    res.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on("error", () => res.destroy());
  stream.pipe(res as unknown as NodeJS.WritableStream);
}

/** The README at /docs and docs/NAME.md at /docs/NAME.md, as plain text (nothing else is readable). */
function serveDoc(root: string, pathname: string, method: string, res: NodeServerResponse): void {
  const rel = pathname === "/docs" || pathname === "/docs/" ? "README.md" : `docs/${pathname.slice("/docs/".length)}`;
  const ok = rel === "README.md" || /^docs\/(?:[A-Za-z0-9_-]+\/)?[A-Za-z0-9_.-]+\.md$/.test(rel);
  const file = join(root, rel);
  if (!ok || rel.includes("..") || !existsSync(file)) {
    send(res, method, 404, TYPES[".txt"]!, "not found\n");
    return;
  }
  send(res, method, 200, "text/plain; charset=utf-8", readFileSync(file, "utf8"));
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}a{color:#0b57d0}code{background:#f1f3f4;padding:0 .25rem;border-radius:3px}li{margin:.3rem 0}</style>
</head><body>${body}</body></html>
`;
}

const LANDING_PAGE = page(
  "convmark",
  `<h1>convmark</h1>
<p>Per-user conversation marks: the unified <code>convmark.v1.MarkService</code> (gRPC, gRPC-Web, Connect, REST) and the ZEGO, Tencent and OpenIM compatible endpoints, on this port.</p>
<ul>
<li><a href="/console">Console</a>: browse and edit a user's conversations, watch them change live</li>
<li><a href="/openapi.json">/openapi.json</a>: the REST API description</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/healthz">/healthz</a>: health (also <code>grpc.health.v1.Health/Check</code> over gRPC or Connect, or <code>npx convmark health</code>)</li>
<li><a href="/docs">Documentation</a>: the README; <a href="/docs/dialects.md">vendor dialects</a></li>
</ul>`,
);
