import { describe, expect, it } from "vitest";
import { ConfigError, coreConfigFromEnv } from "../src/config.js";
import { startConvmark } from "../src/bootstrap.js";
import { LISTENER_DEFAULTS } from "../src/server/listener.js";

describe("core configuration", () => {
  it("accepts the connection strings MongoDB deployments use, host lists included", () => {
    for (const uri of [
      "mongodb://h1:27017,h2:27017,h3:27017/?replicaSet=rs0",
      "mongodb://127.0.0.1:27017/?replicaSet=rs0",
      "mongodb+srv://cluster0.example.net/convmark?retryWrites=true",
    ]) {
      expect(coreConfigFromEnv({ MONGODB_URI: uri }).mongo).toEqual({ uri, dbName: "convmark" });
    }
  });

  it("reads the feed settings, defaulting to 15 s heartbeats, 10,000 queued changes and 30 days of tombstones", () => {
    expect(coreConfigFromEnv({}).feed).toEqual({ heartbeatMs: 15_000, maxBacklog: 10_000, tombstoneRetentionMs: 30 * 24 * 3600 * 1000 });
    expect(
      coreConfigFromEnv({ CONVMARK_WATCH_HEARTBEAT_MS: "500", CONVMARK_WATCH_MAX_BACKLOG: "7", CONVMARK_TOMBSTONE_RETENTION_SECONDS: "60" }).feed,
    ).toEqual({ heartbeatMs: 500, maxBacklog: 7, tombstoneRetentionMs: 60_000 });
    expect(() => coreConfigFromEnv({ CONVMARK_WATCH_HEARTBEAT_MS: "0" })).toThrow(/CONVMARK_WATCH_HEARTBEAT_MS/);
    expect(() => coreConfigFromEnv({ CONVMARK_TOMBSTONE_RETENTION_SECONDS: "soon" })).toThrow(/CONVMARK_TOMBSTONE_RETENTION_SECONDS/);
  });

  it("reads the heap settings, defaulting to 32 MiB semi-spaces and compaction after 64 MiB of growth", () => {
    expect(coreConfigFromEnv({}).heap).toEqual({ semiSpaceMb: 32, idleCompactMb: 64 });
    expect(coreConfigFromEnv({ CONVMARK_SEMI_SPACE_MB: "0", CONVMARK_IDLE_COMPACT_MB: "0" }).heap).toEqual({ semiSpaceMb: 0, idleCompactMb: 0 });
    expect(coreConfigFromEnv({ CONVMARK_SEMI_SPACE_MB: " ", CONVMARK_IDLE_COMPACT_MB: "" }).heap).toEqual({ semiSpaceMb: 32, idleCompactMb: 64 });
    expect(() => coreConfigFromEnv({ CONVMARK_SEMI_SPACE_MB: "2048" })).toThrow(/CONVMARK_SEMI_SPACE_MB: must be at most 1024/);
    expect(() => coreConfigFromEnv({ CONVMARK_IDLE_COMPACT_MB: "-1" })).toThrow(/CONVMARK_IDLE_COMPACT_MB/);
  });

  it("names the variable it refuses", () => {
    expect(() => coreConfigFromEnv({ MONGODB_URI: "http://db:27017" })).toThrow(/MONGODB_URI/);
    expect(() => coreConfigFromEnv({ PORT: "70000" })).toThrow(ConfigError);
    expect(() => coreConfigFromEnv({ CONVMARK_MAX_MARKED_PER_OWNER: "0" })).toThrow(/CONVMARK_MAX_MARKED_PER_OWNER/);
  });

  it("reads the listener's bounds, defaulting to LISTENER_DEFAULTS, and names a bad one", () => {
    expect(coreConfigFromEnv({}).listener).toEqual({
      sniffTimeoutMs: LISTENER_DEFAULTS.sniffTimeoutMs,
      idleTimeoutMs: LISTENER_DEFAULTS.socketIdleTimeoutMs,
      http2MaxConcurrentStreams: LISTENER_DEFAULTS.http2MaxConcurrentStreams,
      http2MaxBufferedBytes: LISTENER_DEFAULTS.http2MaxBufferedBytes,
      http2PauseBufferedBytes: LISTENER_DEFAULTS.http2PauseBufferedBytes,
      http2StallMs: LISTENER_DEFAULTS.http2StallMs,
      http2MaxResetsPerSecond: LISTENER_DEFAULTS.http2MaxResetsPerSecond,
      http2PingIntervalMs: LISTENER_DEFAULTS.http2PingIntervalMs,
      http2PingTimeoutMs: LISTENER_DEFAULTS.http2PingTimeoutMs,
    });
    const vars = {
      CONVMARK_SNIFF_TIMEOUT_MS: "sniffTimeoutMs",
      CONVMARK_IDLE_TIMEOUT_MS: "idleTimeoutMs",
      CONVMARK_HTTP2_MAX_CONCURRENT_STREAMS: "http2MaxConcurrentStreams",
      CONVMARK_HTTP2_MAX_BUFFERED_BYTES: "http2MaxBufferedBytes",
      CONVMARK_HTTP2_PAUSE_BUFFERED_BYTES: "http2PauseBufferedBytes",
      CONVMARK_HTTP2_STALL_MS: "http2StallMs",
      CONVMARK_HTTP2_MAX_RESETS_PER_SECOND: "http2MaxResetsPerSecond",
      CONVMARK_HTTP2_PING_INTERVAL_MS: "http2PingIntervalMs",
      CONVMARK_HTTP2_PING_TIMEOUT_MS: "http2PingTimeoutMs",
    } as const;
    for (const [name, field] of Object.entries(vars)) {
      expect(coreConfigFromEnv({ [name]: "123456" }).listener[field]).toBe(123456);
      expect(coreConfigFromEnv({ [name]: " " }).listener[field]).toBe(coreConfigFromEnv({}).listener[field]);
      expect(() => coreConfigFromEnv({ [name]: "10s" })).toThrow(new RegExp(`${name}: must be a decimal integer`));
      expect(() => coreConfigFromEnv({ [name]: "-1" })).toThrow(new RegExp(`${name}: must be at least`));
    }
  });

  it("turns a connection string the driver cannot parse into a ConfigError before connecting", async () => {
    const err = await startConvmark({ MONGODB_URI: "mongodb://h1:27017/?replicaSet=rs0&w=notanumber&retryWrites=maybe", LOG_LEVEL: "silent" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/MONGODB_URI/);
  });
});
