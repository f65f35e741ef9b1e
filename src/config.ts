/** Core configuration from the environment, validated at start so a bad value stops the server with a clear message. */
import { z } from "zod";
import { DEFAULT_LIMITS, type Limits } from "./domain/limits.js";
import { LISTENER_DEFAULTS as L } from "./server/listener.js";
import { DEFAULT_IDLE_COMPACT_MB, DEFAULT_SEMI_SPACE_MB } from "./server/heap.js";
import { ConfigError, integer, oneOf, optional, parseEnv, text, withDefault, zodProblems } from "./env.js";

export { ConfigError, zodProblems };

const CoreEnv = {
  PORT: withDefault(integer(0, 65535), 8080),
  HOST: withDefault(text, "0.0.0.0"),
  CONVMARK_DATA_DIR: withDefault(text, "./data"),
  // Not z.string().url(): WHATWG URLs reject the host lists of replica-set URIs (mongodb://h1,h2/...);
  // the driver parses the rest when it connects.
  MONGODB_URI: optional(z.string().trim().regex(/^mongodb(\+srv)?:\/\/\S+$/, "must be a mongodb:// or mongodb+srv:// connection string")),
  MONGODB_DB: optional(z.string().trim()),
  LOG_LEVEL: withDefault(oneOf(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info"),
  CONVMARK_READ_MAX_BYTES: withDefault(integer(1024, 1 << 30), 32 << 20),
  CONVMARK_COMPRESS_MIN_BYTES: withDefault(integer(0, 1 << 30), 1 << 20),
  CONVMARK_GATEWAY_MAX_BODY_BYTES: withDefault(integer(1024, 1 << 30), 4 << 20),
  CONVMARK_SHUTDOWN_GRACE_MS: withDefault(integer(0, 600_000), 10_000),
  CONVMARK_MAX_CONNECTIONS: withDefault(integer(1, 1_000_000), L.maxConnections),
  CONVMARK_SNIFF_TIMEOUT_MS: withDefault(integer(100, 600_000), L.sniffTimeoutMs),
  CONVMARK_IDLE_TIMEOUT_MS: withDefault(integer(1000, 86_400_000), L.socketIdleTimeoutMs),
  CONVMARK_HTTP2_MAX_CONCURRENT_STREAMS: withDefault(integer(1, 1_000_000), L.http2MaxConcurrentStreams),
  CONVMARK_HTTP2_MAX_BUFFERED_BYTES: withDefault(integer(64 << 10, 1 << 30), L.http2MaxBufferedBytes),
  CONVMARK_HTTP2_PAUSE_BUFFERED_BYTES: withDefault(integer(0, 1 << 30), L.http2PauseBufferedBytes),
  CONVMARK_HTTP2_STALL_MS: withDefault(integer(100, 3_600_000), L.http2StallMs),
  CONVMARK_HTTP2_MAX_RESETS_PER_SECOND: withDefault(integer(1, 1_000_000), L.http2MaxResetsPerSecond),
  CONVMARK_HTTP2_PING_INTERVAL_MS: withDefault(integer(100, 3_600_000), L.http2PingIntervalMs),
  CONVMARK_HTTP2_PING_TIMEOUT_MS: withDefault(integer(100, 600_000), L.http2PingTimeoutMs),
  CONVMARK_MAX_UPDATES_PER_REQUEST: withDefault(integer(1, 1_000_000), DEFAULT_LIMITS.maxUpdatesPerRequest),
  CONVMARK_MAX_MARKED_PER_OWNER: withDefault(integer(1, 10_000_000), DEFAULT_LIMITS.maxMarkedPerOwner),
  CONVMARK_MAX_LABELS_PER_CONVERSATION: withDefault(integer(1, 10_000), DEFAULT_LIMITS.maxLabelsPerConversation),
  CONVMARK_MAX_PAGE_SIZE: withDefault(integer(1, 100_000), DEFAULT_LIMITS.maxPageSize),
  CONVMARK_WATCH_HEARTBEAT_MS: withDefault(integer(10, 3_600_000), 15_000),
  CONVMARK_WATCH_MAX_BACKLOG: withDefault(integer(1, 10_000_000), 10_000),
  CONVMARK_TOMBSTONE_RETENTION_SECONDS: withDefault(integer(1, 10 * 365 * 24 * 3600), 30 * 24 * 3600),
  CONVMARK_SEMI_SPACE_MB: withDefault(integer(0, 1024), DEFAULT_SEMI_SPACE_MB),
  CONVMARK_IDLE_COMPACT_MB: withDefault(integer(0, 1 << 20), DEFAULT_IDLE_COMPACT_MB),
};

/** Database name in a mongodb:// or mongodb+srv:// URI path (`mongodb://h1,h2/mydb?...` → "mydb"), if any. */
export function dbNameFromUri(uri: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]*)/.exec(uri);
  if (!m || !m[1]) return undefined;
  return decodeURIComponent(m[1]);
}

export interface CoreConfig {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly mongo?: { readonly uri: string; readonly dbName: string };
  readonly logLevel: string;
  readonly readMaxBytes: number;
  /** Responses smaller than this are not compressed (on loopback and LANs gzip costs more CPU than it saves). */
  readonly compressMinBytes: number;
  /** Largest body a vendor REST route reads (ZEGO's largest request, 100 x 200 conversations, is < 1 MiB). */
  readonly gatewayMaxBodyBytes: number;
  readonly shutdownGraceMs: number;
  /** Concurrent TCP connections the listener accepts; more are closed at once. */
  readonly maxConnections: number;
  /** The listener's per-connection bounds (src/server/listener.ts, LISTENER_DEFAULTS). */
  readonly listener: {
    readonly sniffTimeoutMs: number;
    /** HTTP/1.1 sockets without traffic, and HTTP/2 sessions without streams, are closed after this. */
    readonly idleTimeoutMs: number;
    readonly http2MaxConcurrentStreams: number;
    readonly http2MaxBufferedBytes: number;
    readonly http2PauseBufferedBytes: number;
    readonly http2StallMs: number;
    readonly http2MaxResetsPerSecond: number;
    readonly http2PingIntervalMs: number;
    readonly http2PingTimeoutMs: number;
  };
  readonly limits: Limits;
  /** The change feed: Watch heartbeats, a watcher's backlog limit, how long tombstones stay. */
  readonly feed: { readonly heartbeatMs: number; readonly maxBacklog: number; readonly tombstoneRetentionMs: number };
  /** V8 heap settings of the serving processes (src/server/heap.ts); 0 leaves V8's own behaviour. */
  readonly heap: { readonly semiSpaceMb: number; readonly idleCompactMb: number };
}

export function coreConfigFromEnv(env: NodeJS.ProcessEnv): CoreConfig {
  const e = parseEnv(env, CoreEnv);
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: e.CONVMARK_DATA_DIR,
    // MONGODB_DB wins, then the database named in the URI, then "convmark".
    ...(e.MONGODB_URI ? { mongo: { uri: e.MONGODB_URI, dbName: e.MONGODB_DB ?? dbNameFromUri(e.MONGODB_URI) ?? "convmark" } } : {}),
    logLevel: e.LOG_LEVEL,
    readMaxBytes: e.CONVMARK_READ_MAX_BYTES,
    gatewayMaxBodyBytes: e.CONVMARK_GATEWAY_MAX_BODY_BYTES,
    compressMinBytes: e.CONVMARK_COMPRESS_MIN_BYTES,
    shutdownGraceMs: e.CONVMARK_SHUTDOWN_GRACE_MS,
    maxConnections: e.CONVMARK_MAX_CONNECTIONS,
    listener: {
      sniffTimeoutMs: e.CONVMARK_SNIFF_TIMEOUT_MS,
      idleTimeoutMs: e.CONVMARK_IDLE_TIMEOUT_MS,
      http2MaxConcurrentStreams: e.CONVMARK_HTTP2_MAX_CONCURRENT_STREAMS,
      http2MaxBufferedBytes: e.CONVMARK_HTTP2_MAX_BUFFERED_BYTES,
      http2PauseBufferedBytes: e.CONVMARK_HTTP2_PAUSE_BUFFERED_BYTES,
      http2StallMs: e.CONVMARK_HTTP2_STALL_MS,
      http2MaxResetsPerSecond: e.CONVMARK_HTTP2_MAX_RESETS_PER_SECOND,
      http2PingIntervalMs: e.CONVMARK_HTTP2_PING_INTERVAL_MS,
      http2PingTimeoutMs: e.CONVMARK_HTTP2_PING_TIMEOUT_MS,
    },
    limits: {
      ...DEFAULT_LIMITS,
      maxUpdatesPerRequest: e.CONVMARK_MAX_UPDATES_PER_REQUEST,
      maxMarkedPerOwner: e.CONVMARK_MAX_MARKED_PER_OWNER,
      maxLabelsPerConversation: e.CONVMARK_MAX_LABELS_PER_CONVERSATION,
      maxPageSize: e.CONVMARK_MAX_PAGE_SIZE,
    },
    feed: {
      heartbeatMs: e.CONVMARK_WATCH_HEARTBEAT_MS,
      maxBacklog: e.CONVMARK_WATCH_MAX_BACKLOG,
      tombstoneRetentionMs: e.CONVMARK_TOMBSTONE_RETENTION_SECONDS * 1000,
    },
    heap: { semiSpaceMb: e.CONVMARK_SEMI_SPACE_MB, idleCompactMb: e.CONVMARK_IDLE_COMPACT_MB },
  };
}
