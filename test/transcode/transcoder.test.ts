import { create, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictService } from "../../gen/transcodetest/v1/conflict_pb.js";
import { BookSchema, Genre, LibraryService, ListBooksRequestSchema } from "../../gen/transcodetest/v1/library_pb.js";
import { createTranscoder, RouteConfigError, type Transcoder } from "../../src/transcode/index.js";

const seen: { authorization: string | null; procedure: string }[] = [];

function routes(router: ConnectRouter): void {
  router.service(
    LibraryService,
    {
      getBook(req) {
        if (req.name === "shelves/s1/books/missing") throw new ConnectError("no such book", Code.NotFound);
        return { book: { name: req.name, title: "T" } };
      },
      listBooks(req) {
        return { echo: req };
      },
      createBook(req) {
        return { book: { ...create(BookSchema), ...req.book, name: `shelves/${req.shelf}/books/new` }, validatedOnly: req.validateOnly };
      },
      updateBook(req) {
        return { book: req.book };
      },
      archiveBook(req) {
        return { name: req.name, reason: req.reason };
      },
      deleteBook() {
        return {};
      },
      async *watchBooks(req) {
        for (let i = 0; i < req.count; i++) {
          if (req.failAfter > 0 && i === req.failAfter) throw new ConnectError("watch broke", Code.ResourceExhausted);
          yield { book: { name: `shelves/${req.shelf}/books/${i}` } };
        }
      },
      searchBooks(req) {
        return { route: req.shelf ? `special:${req.shelf}` : `search:${req.query}` };
      },
      hidden() {
        return {};
      },
    },
  );
}

let server: Server;
let base: string;
let transcoder: Transcoder;

beforeAll(async () => {
  const transport = createRouterTransport(routes, {
    router: {
      interceptors: [
        (next) => async (req) => {
          seen.push({ authorization: req.header.get("authorization"), procedure: req.method.name });
          return next(req);
        },
      ],
    },
  });
  transcoder = createTranscoder({ services: [LibraryService], transport });
  server = createServer((req, res) => {
    transcoder.handle(req, res).then((handled) => {
      if (!handled) {
        res.writeHead(418);
        res.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json: json as Record<string, unknown>, text };
}

describe("routes", () => {
  it("compiles one route per binding, skipping unannotated methods", () => {
    const names = transcoder.routes.map((r) => `${r.httpMethod} ${r.template.source}`);
    expect(names).toContain("GET /v1/{name=shelves/*/books/*}");
    expect(names).toContain("GET /v1/archive/{name=**}");
    expect(names).toContain("SEARCH /v1/shelves/*/books:search");
    expect(names).toHaveLength(10);
    expect(transcoder.routes.some((r) => r.method.name === "Hidden")).toBe(false);
  });

  it("refuses conflicting annotations at start", () => {
    expect(() => createTranscoder({ services: [ConflictService], transport: createRouterTransport(() => {}) })).toThrow(RouteConfigError);
    expect(() => createTranscoder({ services: [ConflictService], transport: createRouterTransport(() => {}) })).toThrow(/GetThing.*FetchThing|FetchThing.*GetThing/);
  });
});

describe("path templates", () => {
  it("binds a multi-segment variable", async () => {
    const r = await call("GET", "/v1/shelves/s1/books/b%20one");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ book: { name: "shelves/s1/books/b one", title: "T" } });
  });

  it("serves additional_bindings with ** (any depth)", async () => {
    const r = await call("GET", "/v1/archive/a/b/c");
    expect(r.json).toEqual({ book: { name: "a/b/c", title: "T" } });
  });

  it("prefers a literal segment over a variable, and a custom verb over no verb", async () => {
    expect((await call("GET", "/v1/shelves/s9/books/special")).json).toEqual({ route: "special:s9" });
    expect((await call("SEARCH", "/v1/shelves/s9/books:search?query=moby")).json).toEqual({ route: "search:moby" });
  });

  it("routes :verb to its method", async () => {
    const r = await call("POST", "/v1/shelves/s1/books/b1:archive", { reason: "old" });
    expect(r.json).toEqual({ name: "shelves/s1/books/b1", reason: "old" });
  });

  it("answers 404 with a google.rpc.Status for an unknown path", async () => {
    const r = await call("GET", "/v1/nothing/here");
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ code: Code.NotFound, message: "no route for GET /v1/nothing/here", details: [] });
    expect((await call("GET", "/v1/shelves/s1")).status).toBe(404);
  });

  it("answers 405 with Allow for a known path and a wrong method", async () => {
    const r = await call("PUT", "/v1/shelves/s1/books/b1");
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("DELETE, GET, PATCH");
  });

  it("does not claim paths outside its prefixes", async () => {
    expect((await call("GET", "/other")).status).toBe(418);
  });
});

describe("request building", () => {
  it("reads query parameters: dotted paths, repeated keys, enums by name or number, JSON and proto names", async () => {
    const r = await call(
      "GET",
      "/v1/shelves/s1/books?page_size=50&pageToken=abc&filter.genres=GENRE_POETRY&filter.genres=1&filter.tags=a&filter.tags=b" +
        "&filter.min_pages=18446744073709551615&filter.publishedAfter=2026-01-02T03:04:05Z&filter.signed=false&genre=2",
    );
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      echo: {
        shelf: "s1",
        pageSize: 50,
        pageToken: "abc",
        genre: "GENRE_POETRY",
        filter: { genres: ["GENRE_POETRY", "GENRE_FICTION"], tags: ["a", "b"], minPages: "18446744073709551615", publishedAfter: "2026-01-02T03:04:05Z", signed: false },
      },
    });
  });

  it("mixes enum numbers and names in repeated keys; a singular field under both its names is refused", async () => {
    const r = await call("GET", "/v1/shelves/s1/books?filter.min_pages=1&filter.genres=1&filter.genres=GENRE_POETRY");
    expect((r.json.echo as { filter: { genres: string[] } }).filter.genres).toEqual(["GENRE_FICTION", "GENRE_POETRY"]);
    const both = await call("GET", "/v1/shelves/s1/books?page_token=a&pageToken=b");
    expect(both.status).toBe(400);
  });

  it("rejects unknown, malformed and misplaced query parameters with 400", async () => {
    for (const q of ["nope=1", "page_size=x", "genre=GENRE_NOPE", "page_size=1&page_size=2", "filter=1", "shelf=other", "filter.signed=maybe"]) {
      const r = await call("GET", `/v1/shelves/s1/books?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json.code, q).toBe(Code.InvalidArgument);
      expect(typeof r.json.message).toBe("string");
    }
  });

  it("fills one field from body: \"book\", the rest from path and query; response_body sends one field", async () => {
    const r = await call("POST", "/v1/shelves/s2/books?validate_only=true", { title: "Dune", genre: "GENRE_FICTION", pages: "412", publish_time: "1965-08-01T00:00:00Z" });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ name: "shelves/s2/books/new", title: "Dune", genre: "GENRE_FICTION", pages: "412", publishTime: "1965-08-01T00:00:00Z" });
  });

  it("body \"*\": the whole request from the body, the nested path variable wins, query parameters refused", async () => {
    const r = await call("PATCH", "/v1/shelves/s1/books/b7", { book: { name: "ignored", title: "New" }, allowMissing: true });
    expect(r.json).toEqual({ book: { name: "shelves/s1/books/b7", title: "New" } });
    const q = await call("PATCH", "/v1/shelves/s1/books/b7?allow_missing=true", { book: {} });
    expect(q.status).toBe(400);
  });

  it("rejects bad bodies with 400: invalid JSON, unknown fields, wrong types, wrong content type", async () => {
    expect((await call("PATCH", "/v1/shelves/s1/books/b7", "{not json")).status).toBe(400);
    expect((await call("PATCH", "/v1/shelves/s1/books/b7", { nope: 1 })).status).toBe(400);
    expect((await call("PATCH", "/v1/shelves/s1/books/b7", { book: { pages: "many" } })).status).toBe(400);
    expect((await call("PATCH", "/v1/shelves/s1/books/b7", [1, 2])).status).toBe(400);
    const r = await fetch(`${base}/v1/shelves/s1/books/b7`, { method: "PATCH", headers: { "content-type": "text/plain" }, body: "x" });
    expect(r.status).toBe(400);
  });

  it("forwards request headers such as authorization to the call", async () => {
    seen.length = 0;
    await call("DELETE", "/v1/shelves/s1/books/b1", undefined, { authorization: "Bearer abc" });
    expect(seen).toEqual([{ authorization: "Bearer abc", procedure: "DeleteBook" }]);
  });
});

describe("responses", () => {
  it("maps gRPC codes to HTTP statuses with a google.rpc.Status body", async () => {
    const r = await call("GET", "/v1/shelves/s1/books/missing");
    expect(r.status).toBe(404);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.json).toEqual({ code: Code.NotFound, message: "no such book", details: [] });
  });

  it("streams server-streaming methods as NDJSON, an error as a last line", async () => {
    const ok = await call("GET", "/v1/shelves/s3/books:watch?count=3");
    expect(ok.headers.get("content-type")).toBe("application/x-ndjson");
    expect(ok.text.trim().split("\n").map((l) => JSON.parse(l))).toEqual([0, 1, 2].map((i) => ({ result: { book: { name: `shelves/s3/books/${i}` } } })));
    const broken = await call("GET", "/v1/shelves/s3/books:watch?count=3&fail_after=2");
    const lines = broken.text.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toEqual({ error: { code: Code.ResourceExhausted, message: "watch broke", details: [] } });
    const early = await call("GET", "/v1/shelves/s3/books:watch?count=3&fail_after=-1&nope=1");
    expect(early.status).toBe(400);
  });
});

describe("JSON forms", () => {
  it("matches protobuf-es JSON (64-bit as strings, enums as names)", () => {
    const b = create(BookSchema, { pages: 5n, genre: Genre.POETRY, publishTime: { seconds: 0n } });
    expect(toJson(BookSchema, b)).toEqual({ pages: "5", genre: "GENRE_POETRY", publishTime: "1970-01-01T00:00:00Z" });
    expect(timestampDate(b.publishTime!).getTime()).toBe(0);
    expect(ListBooksRequestSchema.typeName).toBe("transcodetest.v1.ListBooksRequest");
  });
});
