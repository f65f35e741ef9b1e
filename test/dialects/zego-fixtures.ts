// Shared fixtures of the ZEGO dialect tests: in-process deps, a real node:http server around
// dialect.handle(), and ZEGO's signature computed independently of the code under test.
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { pino } from "pino";
import { ConversationType, MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import type { DialectDeps } from "../../src/dialects/dialect.js";
import type { DirectoryLookup } from "../../src/directory/directory.js";
import { fakeDirectory as sharedFakeDirectory, type FakeDirectoryData } from "../support/fake-directory.js";
import { createDirectoryGuard } from "../../src/directory/guard.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { MarkStore } from "../../src/store/store.js";

export const APP_ID = 1234567890;
export const SECRET = "0123456789abcdef0123456789abcdef";

/** ZEGO's documented signature: md5 hex of AppId + SignatureNonce + ServerSecret + Timestamp. */
export function md5Signature(appId: string | number, nonce: string, secret: string, timestamp: string | number): string {
  return createHash("md5").update(String(appId) + nonce + secret + String(timestamp)).digest("hex");
}

export interface SignOptions {
  appId?: string | number;
  secret?: string;
  timestamp?: number;
  nonce?: string;
  version?: string;
}

/** The public parameters of one call, freshly signed. */
export function publicParams(o: SignOptions = {}): Record<string, string> {
  const appId = String(o.appId ?? APP_ID);
  const nonce = o.nonce ?? randomBytes(8).toString("hex");
  const ts = String(o.timestamp ?? Math.floor(Date.now() / 1000));
  return {
    AppId: appId,
    SignatureNonce: nonce,
    Timestamp: ts,
    SignatureVersion: o.version ?? "2.0",
    Signature: md5Signature(appId, nonce, o.secret ?? SECRET, ts),
  };
}

export function setConvMarkUrl(base: string, params: Record<string, string>, action: string | null = "SetConvMark"): string {
  const q = new URLSearchParams(action === null ? {} : { Action: action });
  for (const [k, v] of Object.entries(params)) q.set(k, v);
  return `${base}/?${q.toString()}`;
}

/** The request body of the document's example, verbatim. */
export const DOC_EXAMPLE_BODY = `{
    "FromUserId": "user_test",
    "ConvMarkInfoList": [
        {
            "UserId": "userA",
            "SetMarkC2c": {
                "conv_c2c_1": {
                    "MarkContent": 2
                },
                "conv_c2c_2": {
                    "MarkContent": 2
                }
            },
            "SetMarkGroup": {
                "conv_group_1": {
                    "MarkContent": 2
                },
                "conv_group_2": {
                    "MarkContent": 2
                }
            },
            "Action": true
        },
        {
            "UserId": "userB",
            "SetMarkC2c": {
                "conv_c2c_1": {
                    "MarkContent": 2
                },
                "conv_c2c_2": {
                    "MarkContent": 2
                }
            },
            "SetMarkGroup": {
                "conv_group_1": {
                    "MarkContent": 2
                },
                "conv_group_2": {
                    "MarkContent": 2
                }
            },
            "Action": true
        }
    ]
}`;

/** The shared fake directory, in the ZEGO suites' call shape. */
export function fakeDirectory(strict: boolean, data: Omit<FakeDirectoryData, "strict"> = {}): DirectoryLookup {
  return sharedFakeDirectory({ strict, ...data });
}

export interface DepsOptions {
  maxMarkedPerOwner?: number;
  maxBodyBytes?: number;
  directory?: DirectoryLookup;
  now?: () => number;
}

export function makeDeps(o: DepsOptions = {}): { deps: DialectDeps; store: MarkStore } {
  const limits = { ...DEFAULT_LIMITS, maxMarkedPerOwner: o.maxMarkedPerOwner ?? DEFAULT_LIMITS.maxMarkedPerOwner };
  const store = openSqliteStore({ path: ":memory:", limits });
  const directory = o.directory ?? fakeDirectory(false);
  const service = createMarkService({ store, limits, guard: createDirectoryGuard(directory) });
  const marks = createClient(MarkService, createRouterTransport((r) => r.service(MarkService, service)));
  return {
    deps: { marks, directory, logger: pino({ level: "silent" }), now: o.now ?? Date.now, maxBodyBytes: o.maxBodyBytes ?? 1 << 20 },
    store,
  };
}

export interface Handler {
  handle(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse, url: URL): Promise<boolean>;
}

/** A real HTTP server on 127.0.0.1:0 that calls dialect.handle() and answers 404 when it declines. */
export async function serve(dialect: Handler): Promise<{ base: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void dialect.handle(req, res, new URL(req.url ?? "/", "http://x")).then((claimed) => {
      if (!claimed) res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function postJson(url: string, body: string, headers: Record<string, string> = { "content-type": "application/json" }) {
  const res = await fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", text, json: JSON.parse(text) as Record<string, unknown> };
}

export const DIRECT = ConversationType.DIRECT;
export const GROUP = ConversationType.GROUP;
