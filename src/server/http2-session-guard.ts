/**
 * Per-session bounds for the HTTP/2 side of the listener, so one client cannot hold what others need.
 *
 * - Liveness: a PING every pingIntervalMs; no ACK within pingTimeoutMs destroys the session. This
 *   is also what closes sessions that hit a protocol error: nghttp2 answers a malformed frame with
 *   GOAWAY and stops reading, but Node emits no event and never closes the socket; such a session
 *   can no longer send anything, so its PING goes unanswered.
 * - Idle: a session without open streams for idleTimeoutMs gets GOAWAY (closed gracefully).
 * - Rapid reset (CVE-2023-44487): more than maxResetsPerSecond streams reset by the client within a
 *   second → GOAWAY(ENHANCE_YOUR_CALM), then the session is destroyed.
 * - Buffered bytes: responses the client does not read stay buffered in the server; when a
 *   session's open streams hold more than maxBufferedBytes, the session is ended the same way.
 * - Work for clients that do not read: handlers start through `schedule`, at most startsPerTurn per
 *   session per turn of the event loop, and none while the session's open streams hold more than
 *   pauseBufferedBytes of unread response. A client that never reads gets only a few responses
 *   computed (not one per open stream), so the CPU it costs stays small and other clients' calls
 *   (health checks) are not queued behind it; a session paused with streams waiting, whose client
 *   read nothing for longer than stallMs, is ended like one over maxBufferedBytes. Clients that
 *   read never pause for long.
 * Every GOAWAY this guard sends is followed by destroy() after closeGraceMs (Node only closes the
 * socket once every stream has ended, which a misbehaving client need never do).
 */
import * as http2 from "node:http2";

export interface SessionGuardOptions {
  readonly idleTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly maxResetsPerSecond: number;
  readonly maxBufferedBytes: number;
  readonly closeGraceMs: number;
  /** Handlers started per session per turn of the event loop. */
  readonly startsPerTurn: number;
  /** No handler starts while the session's unread responses exceed this. */
  readonly pauseBufferedBytes: number;
  /** A session paused this long with streams waiting is ended ("buffered_bytes"). */
  readonly stallMs: number;
  /** Called once with the reason when the guard ends a session for misbehaviour. */
  readonly onViolation?: (reason: "ping_timeout" | "rapid_reset" | "buffered_bytes") => void;
}

export interface GuardedSession {
  readonly openStreams: number;
  /** Ended for misbehaviour: streams that still arrive are refused without being served. */
  readonly ended: boolean;
  /** Unread response bytes held by the session's open streams. */
  readonly bufferedBytes: number;
  /** Runs start() for this stream when the session may start work (see above); never if the stream closes first. */
  schedule(stream: http2.ServerHttp2Stream, start: () => void): void;
  /** Graceful close (GOAWAY); destroyed once idle, or after closeGraceMs if it has no open streams. */
  close(): void;
}

const TICK_MS = 1000;

export function guardSession(session: http2.ServerHttp2Session, opts: SessionGuardOptions): GuardedSession {
  const streams = new Set<http2.ServerHttp2Stream>();
  let lastActivity = Date.now();
  let resetsThisSecond = 0;
  let pingSentAt: number | undefined;
  let pingDeadlineMs = opts.pingTimeoutMs;
  let lastPing = Date.now();
  let ended = false;

  const destroyLater = (): void => {
    setTimeout(() => {
      if (!session.destroyed) session.destroy();
    }, opts.closeGraceMs).unref();
  };

  const endFor = (reason: "ping_timeout" | "rapid_reset" | "buffered_bytes"): void => {
    if (ended) return;
    ended = true;
    opts.onViolation?.(reason);
    if (reason === "ping_timeout") {
      session.destroy();
      return;
    }
    if (!session.closed && !session.destroyed) session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // Let the GOAWAY go out, then drop the connection: its client is not waited for.
    setImmediate(() => {
      if (!session.destroyed) session.destroy();
    });
  };

  function ping(deadlineMs: number): void {
    if (session.destroyed) return;
    if (pingSentAt !== undefined) {
      pingDeadlineMs = Math.min(pingDeadlineMs, Date.now() - pingSentAt + deadlineMs);
      return;
    }
    lastPing = pingSentAt = Date.now();
    pingDeadlineMs = deadlineMs;
    try {
      session.ping((err) => {
        if (!err) pingSentAt = undefined;
      });
    } catch {
      endFor("ping_timeout"); // the session cannot even queue a frame
    }
  }

  const buffered = (): number => {
    let n = 0;
    for (const s of streams) n += s.writableLength;
    return n;
  };

  // Streams waiting for their handler to start, in arrival order.
  const waiting: { stream: http2.ServerHttp2Stream; start: () => void }[] = [];
  let pumping = false;
  let pausedSince: number | undefined;
  let pausedBuffered = 0;
  const pump = (): void => {
    pumping = false;
    if (ended || session.destroyed) {
      waiting.length = 0;
      return;
    }
    let started = 0;
    while (waiting.length > 0 && started < opts.startsPerTurn) {
      if (buffered() > opts.pauseBufferedBytes) break;
      const next = waiting.shift()!;
      if (next.stream.destroyed || next.stream.closed) continue;
      started++;
      next.start();
    }
    if (waiting.length === 0) {
      pausedSince = undefined;
      return;
    }
    pumping = true;
    if (started === 0) {
      // Paused: look again shortly (responses drain as the client reads). Stalled means no byte
      // was read for stallMs, so a slow reader of a large response is not taken for an attacker.
      const now = buffered();
      if (pausedSince === undefined || now < pausedBuffered) pausedSince = Date.now();
      pausedBuffered = now;
      if (Date.now() - pausedSince > opts.stallMs) {
        endFor("buffered_bytes");
        return;
      }
      setTimeout(pump, 20).unref();
    } else {
      pausedSince = undefined;
      setImmediate(pump);
    }
  };

  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    streams.add(stream);
    lastActivity = Date.now();
    // A reset by the client: 'aborted' comes with the RST_STREAM frame while the response is still
    // open; a stream already answered (nghttp2 hands a whole read of frames to Node at once, so a
    // handler may finish before the reset is seen) only shows it as RST_STREAM(CANCEL) at close.
    let counted = false;
    const countReset = (): void => {
      if (counted) return;
      counted = true;
      if (++resetsThisSecond > opts.maxResetsPerSecond) endFor("rapid_reset");
    };
    stream.once("aborted", countReset);
    stream.once("close", () => {
      streams.delete(stream);
      lastActivity = Date.now();
      if (stream.rstCode === http2.constants.NGHTTP2_CANCEL) countReset();
    });
  });

  const tick = setInterval(() => {
    if (session.destroyed) return;
    const now = Date.now();
    resetsThisSecond = 0;
    if (streams.size > 0 && buffered() > opts.maxBufferedBytes) {
      endFor("buffered_bytes");
      return;
    }
    if (pingSentAt !== undefined) {
      if (now - pingSentAt > pingDeadlineMs) endFor("ping_timeout");
    } else if (now - lastPing >= opts.pingIntervalMs) {
      ping(opts.pingTimeoutMs);
    }
    if (streams.size === 0 && now - lastActivity >= opts.idleTimeoutMs && !session.closed) guarded.close();
  }, TICK_MS);
  tick.unref();
  session.once("close", () => clearInterval(tick));

  const guarded: GuardedSession = {
    get openStreams() {
      return streams.size;
    },
    get ended() {
      return ended;
    },
    get bufferedBytes() {
      return buffered();
    },
    schedule(stream, start) {
      waiting.push({ stream, start });
      if (!pumping) {
        pumping = true;
        // The next turn: nghttp2 hands Node a whole read of frames at once, so by then a stream its
        // client reset right away (rapid reset) is known to be closed and costs no handler.
        setImmediate(pump);
      }
    },
    close() {
      if (!session.closed && !session.destroyed) session.close();
      if (streams.size === 0) destroyLater();
      // A session that can no longer answer (protocol error) would hold its streams until the grace
      // period ends; one quick PING tells it apart from one whose streams are still finishing.
      else ping(opts.closeGraceMs);
    },
  };
  return guarded;
}
