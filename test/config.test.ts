import { describe, expect, it } from "vitest";
import { ConfigError, coreConfigFromEnv } from "../src/config.js";
import { startConvmark } from "../src/bootstrap.js";

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

  it("names the variable it refuses", () => {
    expect(() => coreConfigFromEnv({ MONGODB_URI: "http://db:27017" })).toThrow(/MONGODB_URI/);
    expect(() => coreConfigFromEnv({ PORT: "70000" })).toThrow(ConfigError);
    expect(() => coreConfigFromEnv({ CONVMARK_MAX_MARKED_PER_OWNER: "0" })).toThrow(/CONVMARK_MAX_MARKED_PER_OWNER/);
  });

  it("turns a connection string the driver cannot parse into a ConfigError before connecting", async () => {
    const err = await startConvmark({ MONGODB_URI: "mongodb://h1:27017/?replicaSet=rs0&w=notanumber&retryWrites=maybe", LOG_LEVEL: "silent" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/MONGODB_URI/);
  });
});
