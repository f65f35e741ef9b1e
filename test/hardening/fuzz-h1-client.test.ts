// The fuzzer's HTTP/1.1 client (test/support/h1-client.ts) against node:http servers and a raw
// socket that answers broken HTTP: it must read what node:http's client reads (length-delimited,
// chunked, close-delimited bodies; a stream's first chunk), reuse its keep-alive connections, and
// fail, not guess, on a broken answer — or the fuzz suite could pass on a server that answers garbage.
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { H1Pool } from "../support/h1-client.js";

const post = (path: string, body = "x", stream = false) => ({ method: "POST", path, headers: { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) }, body: Buffer.from(body), stream });

describe("the fuzzer's HTTP/1.1 client", () => {
  let server: http.Server;
  let raw: net.Server;
  let port = 0;
  let rawPort = 0;
  const sockets = new Set<net.Socket>();
  let rawAnswer = "";
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        if (req.url === "/length") {
          res.writeHead(400, { "content-type": "application/json", "x-twice": ["a", "b"] });
          res.end(JSON.stringify({ echo: body }));
        } else if (req.url === "/chunked") {
          res.writeHead(200);
          res.write("one,");
          setTimeout(() => res.end("two"), 20);
        } else if (req.url === "/close") {
          res.writeHead(200, { connection: "close" });
          res.write("until ");
          setTimeout(() => res.end("closed"), 20);
        } else if (req.url === "/empty") {
          res.writeHead(204);
          res.end();
        } else if (req.url === "/stream") {
          res.writeHead(200);
          res.write("first");
          setTimeout(() => res.write("second"), 50); // never ends
        } else {
          res.writeHead(503);
          res.end();
        }
      });
    });
    server.on("connection", (s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
    raw = net.createServer((s) => s.once("data", () => s.end(rawAnswer)));
    await new Promise<void>((r) => raw.listen(0, "127.0.0.1", r));
    rawPort = (raw.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await new Promise((r) => raw.close(r));
  });

  it("reads length-delimited, chunked, close-delimited and empty bodies, on reused connections", async () => {
    const pool = new H1Pool("127.0.0.1", port, 2);
    const a = await pool.request(post("/length", "héllo")).done;
    expect(a.status).toBe(400);
    expect(JSON.parse(a.body.toString())).toEqual({ echo: "héllo" });
    expect(a.headers["x-twice"]).toBe("a, b");
    const b = await pool.request(post("/chunked")).done;
    expect([b.status, b.body.toString(), b.headers["transfer-encoding"]]).toEqual([200, "one,two", "chunked"]);
    expect((await pool.request(post("/empty")).done).status).toBe(204);
    expect((await pool.request({ method: "GET", path: "/length", headers: {}, body: Buffer.alloc(0), stream: false }).done).status).toBe(400);
    expect(sockets.size).toBe(1); // one after the other: one keep-alive connection
    // Three at once on two connections: the third waits for a free one.
    const three = await Promise.all([1, 2, 3].map((i) => pool.request(post("/length", String(i))).done));
    expect(three.map((r) => JSON.parse(r.body.toString()).echo)).toEqual(["1", "2", "3"]);
    expect(sockets.size).toBeLessThanOrEqual(2);
    const c = await pool.request(post("/close")).done;
    expect([c.status, c.body.toString()]).toEqual([200, "until closed"]);
    expect((await pool.request(post("/nope")).done).status).toBe(503);
    pool.close();
  });

  it("takes a stream's first chunk and closes it", async () => {
    const pool = new H1Pool("127.0.0.1", port, 1);
    const s = await pool.request(post("/stream", "x", true)).done;
    expect([s.status, s.body.toString(), s.cut]).toEqual([200, "first", true]);
    // The cut connection is not reused: the next request still gets its answer.
    expect((await pool.request(post("/length")).done).status).toBe(400);
    pool.close();
  });

  it("refuses to send what node:http refuses", () => {
    const pool = new H1Pool("127.0.0.1", port, 1);
    expect(() => http.request({ port, path: "/a b" })).toThrow(/unescaped/);
    expect(() => pool.request(post("/a b"))).toThrow(/unescaped/);
    expect(() => pool.request({ ...post("/x"), headers: { "x-bad": "a\nb" } })).toThrow(/Invalid character/);
    pool.close();
  });

  it("fails on a broken answer instead of guessing", async () => {
    const broken = [
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
      "garbage",
    ];
    for (const answer of broken) {
      rawAnswer = answer;
      const pool = new H1Pool("127.0.0.1", rawPort, 1);
      await expect(pool.request(post("/")).done, JSON.stringify(answer)).rejects.toThrow();
      pool.close();
    }
    rawAnswer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    const pool = new H1Pool("127.0.0.1", rawPort, 1);
    expect((await pool.request(post("/")).done).body.toString()).toBe("ok");
    pool.close();
  });
});
