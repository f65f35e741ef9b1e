/**
 * A small HTTP/1.1 client for the fuzzer (test/support/fuzzer.ts): keep-alive connections on
 * loopback, one request at a time on each, requests written as one buffer, responses parsed here.
 * node:http's client costs ~70-100 µs of CPU per request on the 2-core test machine, this one ~30
 * (docs/reliability.md "Fuzz volume"); the fuzzer shares the machine with the server it fuzzes, so
 * its cost is wall time of the suite.
 *
 * It checks what node:http's client checks before sending (the path and header characters, so a
 * request it would refuse is refused here too) and is strict about what comes back: a status line
 * other than `HTTP/1.x NNN`, a header line without a colon, a bad chunk size, both or neither of
 * Content-Length and Transfer-Encoding where a body follows, or bytes after a response that nobody
 * asked for are errors (the request fails, and the fuzzer counts a failure), never guessed at.
 */
import * as net from "node:net";

export interface H1Response {
  readonly status: number;
  /** Lower-case names; repeated headers joined with ", " (as node:http does for most). */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** The fuzzer asked to stop at the first body bytes (a stream) and did: the connection is gone. */
  readonly cut?: boolean;
}

export interface H1Request {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** Resolve at the first body bytes (cut), then close the connection: server streams never end. */
  readonly stream: boolean;
}

/** node:http's own checks (INVALID_PATH_REGEX, checkIsHttpToken, checkInvalidHeaderChar). */
const INVALID_PATH = /[^\u0021-\u00ff]/;
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** The request's bytes, or the error node:http would throw for it. */
function requestBytes(host: string, r: H1Request): Buffer {
  if (INVALID_PATH.test(r.path)) throw new TypeError(`Request path contains unescaped characters: ${JSON.stringify(r.path)}`);
  let head = `${r.method} ${r.path} HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n`;
  for (const [k, v] of Object.entries(r.headers)) {
    if (!TOKEN.test(k)) throw new TypeError(`Header name must be a valid HTTP token ["${k}"]`);
    if (INVALID_HEADER_VALUE.test(v)) throw new TypeError(`Invalid character in header content ["${k}"]`);
    head += `${k}: ${v}\r\n`;
  }
  head += "\r\n";
  const h = Buffer.from(head, "latin1");
  return r.body.length === 0 ? h : Buffer.concat([h, r.body]);
}

interface Exchange {
  readonly req: H1Request;
  resolve(r: H1Response): void;
  reject(e: Error): void;
}

/** Reads one response after another from a connection's bytes. */
class ResponseParser {
  private buf: Buffer = Buffer.alloc(0);
  private head?: { status: number; headers: Record<string, string>; framing: "length" | "chunked" | "close" | "none"; length: number };
  private chunks: Buffer[] = [];
  private bodyBytes = 0;
  /** chunked: bytes of the current chunk still to read (-1: a size line comes next; -2: the CRLF after a chunk). */
  private chunkLeft = -1;

  push(data: Buffer): void {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data]);
  }

  /**
   * Parses what it can: "head" once the head is in, "done" with the response complete. With
   * `firstBody` it stops after the first piece of body (what node:http's first 'data' event holds:
   * one chunk's data, or what of it has arrived).
   */
  step(firstBody = false): { state: "need" | "head" | "done"; response?: H1Response } {
    if (!this.head) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.buf.length > 65536) throw new Error("response head larger than 64 KiB");
        return { state: "need" };
      }
      const lines = this.buf.toString("latin1", 0, end).split("\r\n");
      this.buf = this.buf.subarray(end + 4);
      const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]!);
      if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0]!.slice(0, 80))}`);
      const status = Number(m[1]);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line.slice(0, 80))}`);
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      if (status >= 100 && status < 200) return this.step(firstBody); // 1xx: the real head follows
      const te = headers["transfer-encoding"];
      const cl = headers["content-length"];
      let framing: "length" | "chunked" | "close" | "none";
      let length = 0;
      if (status === 204 || status === 304) framing = "none";
      else if (te !== undefined) {
        if (cl !== undefined || te.toLowerCase() !== "chunked") throw new Error(`bad framing: transfer-encoding ${te}, content-length ${cl}`);
        framing = "chunked";
      } else if (cl !== undefined) {
        if (!/^\d+$/.test(cl)) throw new Error(`bad content-length ${cl}`);
        framing = "length";
        length = Number(cl);
      } else framing = "close";
      this.head = { status, headers, framing, length };
      this.chunks = [];
      this.bodyBytes = 0;
      this.chunkLeft = -1;
    }
    const h = this.head;
    if (h.framing === "none" || (h.framing === "length" && h.length === 0)) return this.finish();
    if (h.framing === "length") {
      const take = Math.min(this.buf.length, h.length - this.bodyBytes);
      if (take > 0) this.body(this.buf.subarray(0, take));
      this.buf = this.buf.subarray(take);
      return this.bodyBytes === h.length ? this.finish() : { state: "head" };
    }
    if (h.framing === "close") {
      if (this.buf.length > 0) this.body(this.buf);
      this.buf = Buffer.alloc(0);
      return { state: "head" };
    }
    // chunked
    for (;;) {
      if (this.chunkLeft === -1) {
        const eol = this.buf.indexOf("\r\n");
        if (eol < 0) return { state: "head" };
        const line = this.buf.toString("latin1", 0, eol);
        const size = /^([0-9a-fA-F]+)(?:;.*)?$/.exec(line);
        if (!size) throw new Error(`bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
        this.buf = this.buf.subarray(eol + 2);
        const n = parseInt(size[1]!, 16);
        if (n === 0) {
          // Trailers (none expected) up to the empty line.
          const end = this.buf.indexOf("\r\n");
          if (end < 0) return { state: "head" };
          if (end !== 0) {
            const all = this.buf.indexOf("\r\n\r\n");
            if (all < 0) return { state: "head" };
            this.buf = this.buf.subarray(all + 4);
          } else this.buf = this.buf.subarray(2);
          return this.finish();
        }
        this.chunkLeft = n;
      }
      if (this.chunkLeft > 0) {
        const take = Math.min(this.buf.length, this.chunkLeft);
        if (take === 0) return { state: "head" };
        this.body(this.buf.subarray(0, take));
        this.buf = this.buf.subarray(take);
        this.chunkLeft -= take;
        if (this.chunkLeft > 0 || firstBody) {
          if (this.chunkLeft === 0) this.chunkLeft = -2;
          return { state: "head" };
        }
        this.chunkLeft = -2;
      }
      if (this.chunkLeft === -2) {
        if (this.buf.length < 2) return { state: "head" };
        if (this.buf[0] !== 0x0d || this.buf[1] !== 0x0a) throw new Error("chunk not followed by CRLF");
        this.buf = this.buf.subarray(2);
        this.chunkLeft = -1;
      }
    }
  }

  /** Body bytes so far (a stream is cut at the first). */
  get bodySoFar(): number {
    return this.bodyBytes;
  }

  partial(): H1Response | undefined {
    return this.head ? { status: this.head.status, headers: this.head.headers, body: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks) } : undefined;
  }

  /** The connection closed: completes a response read until close. */
  closed(): H1Response | undefined {
    if (this.head?.framing !== "close") return undefined;
    return this.finish().response;
  }

  /** Bytes past the last complete response. */
  get leftover(): number {
    return this.buf.length;
  }

  private body(b: Buffer): void {
    this.chunks.push(Buffer.from(b)); // a copy: the socket's buffer is not ours to keep
    this.bodyBytes += b.length;
  }

  private finish(): { state: "done"; response: H1Response } {
    const h = this.head!;
    const response = { status: h.status, headers: h.headers, body: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks) };
    this.head = undefined;
    this.chunks = [];
    this.bodyBytes = 0;
    return { state: "done", response };
  }
}

class Connection {
  readonly socket: net.Socket;
  private parser = new ResponseParser();
  private current?: Exchange;
  dead = false;

  constructor(
    port: number,
    host: string,
    private readonly onIdle: (c: Connection) => void,
    private readonly onDead: (c: Connection) => void,
  ) {
    this.socket = net.connect(port, host);
    this.socket.setNoDelay(true);
    this.socket.on("data", (d: Buffer) => this.onData(d));
    this.socket.on("error", () => {});
    this.socket.on("close", () => this.onClose());
  }

  send(x: Exchange, bytes: Buffer): void {
    this.current = x;
    this.socket.write(bytes);
  }

  /** Ends the exchange in flight without an answer (a hang): the connection is not reused. */
  abort(): void {
    this.current = undefined;
    this.kill();
  }

  private kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
    this.onDead(this);
  }

  private onData(d: Buffer): void {
    const x = this.current;
    if (!x) {
      this.kill(); // bytes nobody asked for
      return;
    }
    this.parser.push(d);
    let r: ReturnType<ResponseParser["step"]>;
    try {
      r = this.parser.step(x.req.stream);
    } catch (e) {
      this.current = undefined;
      this.kill();
      x.reject(e as Error);
      return;
    }
    if (x.req.stream && this.parser.bodySoFar > 0 && r.state !== "done") {
      // A stream answered: take its first bytes and close it (its socket is not reused).
      this.current = undefined;
      this.kill();
      x.resolve({ ...this.parser.partial()!, cut: true });
      return;
    }
    if (r.state !== "done") return;
    this.current = undefined;
    const res = r.response!;
    if (x.req.stream && res.body.length > 0) x.resolve({ ...res, cut: true });
    else x.resolve(res);
    if (this.parser.leftover > 0 || /(^|,)\s*close\s*($|,)/i.test(res.headers.connection ?? "")) this.kill();
    else this.onIdle(this);
  }

  private onClose(): void {
    const x = this.current;
    this.current = undefined;
    const wasDead = this.dead;
    this.dead = true;
    if (!wasDead) this.onDead(this);
    if (!x) return;
    const res = this.parser.closed();
    if (res) x.resolve(x.req.stream && res.body.length > 0 ? { ...res, cut: true } : res);
    else x.reject(new Error("socket hang up"));
  }
}

/** Up to `max` keep-alive connections; requests beyond wait for a free one, in order. */
export class H1Pool {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly queue: { x: Exchange; bytes: Buffer; onStart(c: Connection): void }[] = [];
  private readonly hostHeader: string;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly max: number,
  ) {
    this.hostHeader = `${host}:${port}`;
  }

  /**
   * Sends `req`; throws what node:http would throw for it, resolves with the response, rejects when
   * the connection failed or the answer was broken. `cancel()` of the result drops the request (its connection is closed).
   */
  request(req: H1Request): { done: Promise<H1Response>; cancel(): void } {
    let cancel = (): void => {};
    const bytes = requestBytes(this.hostHeader, req); // throws as node:http's request() does
    const done = new Promise<H1Response>((resolve, reject) => {
      let conn: Connection | undefined;
      let cancelled = false;
      const x: Exchange = { req, resolve, reject };
      const item = { x, bytes, onStart: (c: Connection) => (conn = c) };
      cancel = () => {
        if (cancelled) return;
        cancelled = true;
        if (conn) conn.abort();
        else {
          const i = this.queue.indexOf(item);
          if (i >= 0) this.queue.splice(i, 1);
        }
      };
      this.queue.push(item);
      this.pump();
    });
    return { done, cancel: () => cancel() };
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let c = this.idle.pop();
      if (!c) {
        if (this.all.size >= this.max) return;
        c = new Connection(
          this.port,
          this.host,
          (conn) => {
            this.idle.push(conn);
            this.pump();
          },
          (conn) => {
            this.all.delete(conn);
            const i = this.idle.indexOf(conn);
            if (i >= 0) this.idle.splice(i, 1);
            this.pump();
          },
        );
        this.all.add(c);
      }
      const item = this.queue.shift()!;
      item.onStart(c);
      c.send(item.x, item.bytes);
    }
  }

  close(): void {
    this.queue.length = 0;
    for (const c of [...this.all]) c.abort();
  }
}
