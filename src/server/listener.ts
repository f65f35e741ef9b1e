// One TCP port for plaintext HTTP/2 (h2c with prior knowledge, what gRPC clients speak) and HTTP/1.1.
// Node's `allowHTTP1` needs TLS/ALPN, so we sniff the first bytes of every connection ourselves.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { Gauge, type Registry } from "prom-client";
import { guardSession, type GuardedSession } from "./http2-session-guard.js";

/** What connectNodeAdapter returns: a request listener for both http and http2 (connect-node does not export the type). */
export type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;
export type NodeServerRequest = Parameters<NodeHandlerFn>[0];
export type NodeServerResponse = Parameters<NodeHandlerFn>[1];

/** The client connection preface every HTTP/2 prior-knowledge connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * The listener's bounds when not configured (README: CONVMARK_HTTP2_*, CONVMARK_SNIFF_TIMEOUT_MS,
 * CONVMARK_IDLE_TIMEOUT_MS, CONVMARK_MAX_CONNECTIONS), written here once for the listener and the
 * configuration schema.
 */
export const LISTENER_DEFAULTS = {
  sniffTimeoutMs: 10_000,
  maxConnections: 10_000,
  // 100 is RFC 9113's recommended minimum and what grpc-go, Envoy and nginx use.
  http2MaxConcurrentStreams: 100,
  http2PingIntervalMs: 10_000,
  http2PingTimeoutMs: 10_000,
  http2MaxResetsPerSecond: 200,
  http2MaxBufferedBytes: 32 << 20,
  http2PauseBufferedBytes: 1 << 20,
  http2StartsPerTurn: 4,
  http2StallMs: 10_000,
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 65_000,
  socketIdleTimeoutMs: 300_000,
  http2IdleTimeoutMs: 300_000,
  drainMaxBytes: 64 << 20,
} as const;

export interface DualProtocolServerOptions {
  /** A new connection must send enough bytes to tell the protocol apart within this time (a deadline). Default 10 s. */
  sniffTimeoutMs?: number;
  /** Concurrent TCP connections; more are closed as soon as they are accepted. Default 10,000. */
  maxConnections?: number;
  /** HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS, streams one session may have open; more are refused. Default 100. */
  http2MaxConcurrentStreams?: number;
  /** HTTP/2: PING every this often; a session that does not answer within http2PingTimeoutMs is destroyed. Default 10 s / 10 s. */
  http2PingIntervalMs?: number;
  http2PingTimeoutMs?: number;
  /** HTTP/2: streams a client may reset per second before its session is ended (rapid reset). Default 200. */
  http2MaxResetsPerSecond?: number;
  /** HTTP/2: response bytes a session's open streams may hold unread before the session is ended. Default 32 MiB. */
  http2MaxBufferedBytes?: number;
  /** HTTP/2: no new handler of a session starts while its unread responses exceed this. Default 1 MiB. */
  http2PauseBufferedBytes?: number;
  /** HTTP/2: handlers started per session per event-loop turn. Default 4. */
  http2StartsPerTurn?: number;
  /** HTTP/2: a session paused with streams waiting for this long is ended. Default 10 s. */
  http2StallMs?: number;
  /** Notified when a connection is refused or a session is ended for misbehaviour (for logs and metrics). */
  onEvent?: (e: { kind: "connection_refused" | "http2_session_ended"; reason: string }) => void;
  /** HTTP/1.1: all request headers must arrive within this time (slowloris). Default 15 s. */
  headersTimeoutMs?: number;
  /** HTTP/1.1: the whole request (headers and body) must arrive within this time. Default 120 s. */
  requestTimeoutMs?: number;
  /** HTTP/1.1: close a keep-alive socket idle for this long between requests. Default 65 s (above common LB idle timeouts). */
  keepAliveTimeoutMs?: number;
  /** HTTP/1.1: destroy a socket with no traffic either way for this long, also mid-request. Default 300 s. */
  socketIdleTimeoutMs?: number;
  /** HTTP/2: GOAWAY a session without open streams for this long. Default 300 s. */
  http2IdleTimeoutMs?: number;
  /** HTTP/2: unread request body dropped after an early response before the stream is reset. Default 64 MiB. */
  drainMaxBytes?: number;
  /** Extra HTTP/2 server options (settings, maxSessionMemory, ...). */
  http2Options?: http2.ServerOptions;
}

export interface DualProtocolServer {
  listen(port: number, host?: string): Promise<AddressInfo>;
  /**
   * Stops accepting connections, sends GOAWAY on HTTP/2 sessions, closes idle HTTP/1.1 connections,
   * lets in-flight requests finish for up to graceMs (default 10 s), then destroys what is left.
   */
  close(graceMs?: number): Promise<void>;
  /** Requests currently being served, both protocols. */
  readonly inFlight: number;
  /** What the listener holds open right now (the convmark_listener_open gauge). */
  open(): ListenerOpen;
}

/**
 * Open TCP connections (sniffed or not), HTTP/2 sessions, HTTP/2 streams (answered or not, until
 * closed) and requests being served (both protocols, until the response finishes or closes).
 */
export interface ListenerOpen {
  readonly connection: number;
  readonly session: number;
  readonly stream: number;
  readonly request: number;
}

/**
 * Registers `convmark_listener_open{kind}` in `registry`, read from `server` at every scrape. A
 * cluster's /metrics sums it over the workers (prom-client's default aggregation for gauges), so
 * it tells whether anything is left open after a burst.
 */
export function registerListenerOpenGauge(server: Pick<DualProtocolServer, "open">, registry: Registry): void {
  const name = "convmark_listener_open";
  if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  new Gauge({
    name,
    help: "What the listener holds open: TCP connections, HTTP/2 sessions, HTTP/2 streams, requests being served.",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      const o = server.open();
      for (const kind of ["connection", "session", "stream", "request"] as const) this.set({ kind }, o[kind]);
    },
  });
}

export function createDualProtocolServer(
  handler: NodeHandlerFn,
  opts: DualProtocolServerOptions = {},
): DualProtocolServer {
  const d = LISTENER_DEFAULTS;
  const sniffTimeoutMs = opts.sniffTimeoutMs ?? d.sniffTimeoutMs;
  const http2IdleTimeoutMs = opts.http2IdleTimeoutMs ?? d.http2IdleTimeoutMs;
  const drainMaxBytes = opts.drainMaxBytes ?? d.drainMaxBytes;

  const sockets = new Set<net.Socket>();
  const sniffing = new Set<net.Socket>();
  const sessions = new Map<http2.ServerHttp2Session, GuardedSession>();
  const h1Responses = new Set<http.ServerResponse>(); // in flight, to mark "connection: close" when draining
  let closing = false;
  let closed: Promise<void> | undefined;
  let inFlight = 0;

  const h1 = http.createServer(
    {
      headersTimeout: opts.headersTimeoutMs ?? d.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs ?? d.requestTimeoutMs,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? d.keepAliveTimeoutMs,
      // headers/request timeouts are checked on this tick only; Node's 30 s default is too coarse.
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => serve(req, res),
  );
  h1.setTimeout(opts.socketIdleTimeoutMs ?? d.socketIdleTimeoutMs);
  // h1 never listens itself, but Node only starts connection tracking (headersTimeout, requestTimeout,
  // closeIdleConnections) on 'listening'.
  h1.emit("listening");

  const h2 = http2.createServer(
    {
      ...opts.http2Options,
      // Bound what one connection can hold open; Node's default is effectively unlimited.
      settings: { maxConcurrentStreams: opts.http2MaxConcurrentStreams ?? d.http2MaxConcurrentStreams, ...opts.http2Options?.settings },
    },
    (req, res) => serve(req, res),
  );
  h2.on("session", (session: http2.ServerHttp2Session) => {
    const guarded = guardSession(session, {
      idleTimeoutMs: http2IdleTimeoutMs,
      pingIntervalMs: opts.http2PingIntervalMs ?? d.http2PingIntervalMs,
      pingTimeoutMs: opts.http2PingTimeoutMs ?? d.http2PingTimeoutMs,
      maxResetsPerSecond: opts.http2MaxResetsPerSecond ?? d.http2MaxResetsPerSecond,
      maxBufferedBytes: opts.http2MaxBufferedBytes ?? d.http2MaxBufferedBytes,
      closeGraceMs: 1_000,
      startsPerTurn: opts.http2StartsPerTurn ?? d.http2StartsPerTurn,
      pauseBufferedBytes: opts.http2PauseBufferedBytes ?? d.http2PauseBufferedBytes,
      stallMs: opts.http2StallMs ?? d.http2StallMs,
      ...(opts.onEvent ? { onViolation: (reason) => opts.onEvent!({ kind: "http2_session_ended", reason }) } : {}),
    });
    sessions.set(session, guarded);
    session.once("close", () => sessions.delete(session));
    if (closing) guarded.close();
  });
  // Bad frames and resets only end their own session; not fatal.
  h2.on("sessionError", () => {});

  function serve(req: NodeServerRequest, res: NodeServerResponse): void {
    inFlight++;
    const h1res = req.httpVersionMajor === 1 ? (res as http.ServerResponse) : undefined;
    if (h1res) {
      if (closing) noKeepAlive(h1res);
      else h1Responses.add(h1res);
    }
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      inFlight--;
      if (h1res) h1Responses.delete(h1res);
      // Its keep-alive socket may be idle now; close it if we are draining.
      if (closing) setImmediate(() => h1.closeIdleConnections());
    };
    res.once("finish", finish);
    res.once("close", finish);
    keepBodyOnEarlyReturn(req);
    if (h1res) {
      handler(req, res);
      return;
    }
    // HTTP/2: start the handler on the next turn of the event loop. nghttp2 hands Node a whole read
    // of frames at once, so by then a stream its client reset right away (rapid reset) is known to
    // be closed and costs no handler; so are streams of a session ended for misbehaviour.
    // The session guard decides when: a few per turn, none while the client leaves its responses unread.
    const h2req = req as http2.Http2ServerRequest;
    const stream = h2req.stream;
    const guard = sessions.get(stream.session as http2.ServerHttp2Session);
    const start = (): void => {
      if (stream.destroyed || stream.closed) return;
      if (guard?.ended) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      drainUnreadBody(h2req, res as http2.Http2ServerResponse);
      handler(req, res);
    };
    if (guard) guard.schedule(stream, start);
    else setImmediate(start);
  }

  /**
   * A reader that stops iterating a request early (connect-node past readMaxBytes) must not destroy
   * it: destroying an HTTP/2 request resets its stream before the response is written (the client
   * gets no answer), and an HTTP/1.1 one loses the connection. The rest of the body is drained instead.
   */
  function keepBodyOnEarlyReturn(req: NodeServerRequest): void {
    const readable = req as unknown as NodeJS.ReadableStream & { iterator(o: { destroyOnReturn: boolean }): AsyncIterableIterator<Buffer> };
    Object.defineProperty(req, Symbol.asyncIterator, { value: () => readable.iterator({ destroyOnReturn: false }), configurable: true });
  }

  /**
   * HTTP/2: a response sent before its request body was read must not end the stream early.
   * Node closes such a stream with RST_STREAM(NO_ERROR) as soon as the response is written, while
   * the client may still hold the rest of the body queued; Node's own client (and so grpc-js) keeps
   * that data charged to its session memory, and once maxSessionMemory (10 MB) is exceeded it refuses
   * every later response on the connection with RST_STREAM(ENHANCE_YOUR_CALM), health checks
   * included. So the unread rest is read and dropped (Node then keeps the stream open until the
   * client ends it); past drainMaxBytes the stream is reset with NO_ERROR (RFC 9113 §8.1).
   */
  function drainUnreadBody(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
    const end = res.end;
    res.end = function (this: http2.Http2ServerResponse, ...args: Parameters<typeof end>) {
      if (!req.readableEnded && !req.destroyed) {
        let dropped = 0;
        req.on("data", (chunk: Buffer) => {
          dropped += chunk.length;
          if (dropped > drainMaxBytes && !req.stream.closed) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
        });
        req.resume();
      }
      return end.apply(this, args);
    } as typeof end;
  }

  /** Draining: the HTTP/1.1 client must not reuse this connection (Node closes it after the response). */
  function noKeepAlive(res: http.ServerResponse): void {
    if (!res.headersSent) res.setHeader("connection", "close");
  }

  // noDelay as http.Server would set it: small gRPC frames must not wait for Nagle.
  const tcp = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // ECONNRESET and friends must never become uncaught exceptions; the owning server cleans up.
    socket.on("error", () => {});
    if (closing) {
      socket.destroy();
      return;
    }
    sniff(socket);
  });

  // Past maxConnections Node closes new connections right away ('drop').
  tcp.maxConnections = opts.maxConnections ?? d.maxConnections;
  tcp.on("drop", () => opts.onEvent?.({ kind: "connection_refused", reason: "max_connections" }));

  function sniff(socket: net.Socket): void {
    sniffing.add(socket);
    socket.once("close", () => sniffing.delete(socket));
    const chunks: Buffer[] = [];
    let seen = 0;
    const drop = (): void => {
      socket.destroy();
    };
    // A deadline, not an idle timeout: a byte every few seconds must not keep a socket undecided.
    const deadline = setTimeout(drop, sniffTimeoutMs);
    deadline.unref();
    socket.once("close", () => clearTimeout(deadline));
    socket.once("end", drop);
    const onData = (chunk: Buffer): void => {
      // Compare only the new bytes with the matching slice of the preface, so a short first chunk
      // (even a lone "P") stays undecided instead of being misrouted.
      const n = Math.min(chunk.length, H2_PREFACE.length - seen);
      const matches = chunk.subarray(0, n).equals(H2_PREFACE.subarray(seen, seen + n));
      chunks.push(chunk);
      seen += chunk.length;
      if (matches && seen < H2_PREFACE.length) return;
      socket.off("data", onData);
      socket.off("end", drop);
      clearTimeout(deadline);
      sniffing.delete(socket);
      socket.pause();
      socket.unshift(Buffer.concat(chunks));
      if (matches) {
        // Http2Session drains the socket's readable buffer into nghttp2 when it takes the handle over.
        h2.emit("connection", socket);
      } else {
        // The HTTP/1 parser reads the native handle directly; what we unshifted only reaches it as a
        // 'data' event, emitted (before any new bytes from libuv) once the socket flows again.
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  }

  async function shutdown(graceMs: number): Promise<void> {
    closing = true;
    // Stop accepting; the callback fires once every accepted socket is gone.
    const drained = new Promise<void>((resolve) => tcp.close(() => resolve()));
    // GOAWAY: open streams finish, no new ones are accepted, then the session ends; sessions
    // without streams are destroyed shortly after (a client that never ends its side cannot hold us).
    for (const g of sessions.values()) g.close();
    // Connections still being sniffed have not even sent a request.
    for (const s of sniffing) s.destroy();
    h1.closeIdleConnections();
    for (const res of h1Responses) noKeepAlive(res);
    h1Responses.clear();
    const timer = setTimeout(() => {
      for (const s of sessions.keys()) s.destroy();
      for (const s of sockets) s.destroy();
    }, graceMs);
    try {
      await drained;
    } finally {
      clearTimeout(timer);
    }
    // Neither listens; this stops h1's connection-checking interval.
    h1.close();
    h2.close();
  }

  return {
    get inFlight() {
      return inFlight;
    },

    open(): ListenerOpen {
      let stream = 0;
      for (const g of sessions.values()) stream += g.openStreams;
      return { connection: sockets.size, session: sessions.size, stream, request: inFlight };
    },

    listen(port: number, host?: string): Promise<AddressInfo> {
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        tcp.once("error", onError);
        tcp.listen(port, host, () => {
          tcp.off("error", onError);
          resolve(tcp.address() as AddressInfo);
        });
      });
    },

    close(graceMs = 10_000): Promise<void> {
      closed ??= tcp.listening
        ? shutdown(graceMs)
        : Promise.resolve().then(() => {
            closing = true;
            h1.close();
            h2.close();
          });
      return closed;
    },
  };
}
