// Issue 7, item 9: one rule for empty values across every configuration schema (empty or blank =
// unset), and MONGODB_URI's database used unless MONGODB_DB is given.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configFromEnv } from "../../src/bootstrap.js";
import { coreConfigFromEnv } from "../../src/config.js";
import { startTestServer } from "../support/harness.js";

/** Every variable of the README's configuration tables (main table and the dialects' inline lists). */
function documentedVariables(): string[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const names = new Set<string>();
  for (const m of readme.matchAll(/`((?:PORT|HOST|LOG_LEVEL|MONGODB|CONVMARK|ZEGO|TENCENT|OPENIM)[A-Z0-9_]*)`/g)) names.add(m[1]!);
  return [...names];
}

describe("empty configuration values (item 9)", () => {
  const vars = documentedVariables();

  it("the README documents the variables of every schema", () => {
    for (const v of ["PORT", "CONVMARK_SHUTDOWN_GRACE_MS", "MONGODB_DB", "CONVMARK_STRICT_DIRECTORY", "ZEGO_RATE_LIMIT_PER_SECOND", "TENCENT_ADMIN_IDENTIFIERS", "OPENIM_TOKEN_TTL_SECONDS", "OPENIM_SECRET_FAILURES_PER_MINUTE"]) {
      expect(vars).toContain(v);
    }
  });

  it.each(["", "  "])("every documented variable set to %j means the same as unset", (value) => {
    const unset = configFromEnv({});
    for (const name of vars) {
      expect({ name, config: configFromEnv({ [name]: value }) }).toEqual({ name, config: unset });
    }
  });

  it("PORT= is the default port, not a random one; CONVMARK_SHUTDOWN_GRACE_MS= is the default grace, not 0", () => {
    expect(coreConfigFromEnv({ PORT: "" }).port).toBe(8080);
    expect(coreConfigFromEnv({ CONVMARK_SHUTDOWN_GRACE_MS: "" }).shutdownGraceMs).toBe(10_000);
  });

  it("values that are not empty are still checked, naming the variable", () => {
    for (const [name, value] of [["PORT", "80 80"], ["PORT", "1e3"], ["CONVMARK_SHUTDOWN_GRACE_MS", "0x10"], ["OPENIM_MAX_USER_IDS", "-1"], ["CONVMARK_STRICT_DIRECTORY", "yes"], ["LOG_LEVEL", "loud"]] as const) {
      expect(() => configFromEnv({ [name]: value })).toThrow(name);
    }
  });

  it("the real server started with empty values uses the defaults", async () => {
    const server = await startTestServer({ CONVMARK_SHUTDOWN_GRACE_MS: "", CONVMARK_MAX_PAGE_SIZE: " ", MONGODB_URI: "", ZEGO_APP_ID: "", ZEGO_SERVER_SECRET: "" });
    try {
      expect(server.running.config.shutdownGraceMs).toBe(10_000);
      expect(server.running.config.limits.maxPageSize).toBe(1000);
      expect(server.running.config.mongo).toBeUndefined();
      const health = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(await health.json()).toEqual({ status: "SERVING" });
    } finally {
      await server.close();
    }
  });
});

describe("MongoDB database name (item 9)", () => {
  it("uses the database named in MONGODB_URI unless MONGODB_DB is given, else convmark", () => {
    expect(coreConfigFromEnv({ MONGODB_URI: "mongodb://h/mydb" }).mongo).toEqual({ uri: "mongodb://h/mydb", dbName: "mydb" });
    expect(coreConfigFromEnv({ MONGODB_URI: "mongodb://h1:27017,h2:27017/marks?replicaSet=rs0" }).mongo?.dbName).toBe("marks");
    expect(coreConfigFromEnv({ MONGODB_URI: "mongodb://h/mydb", MONGODB_DB: "other" }).mongo?.dbName).toBe("other");
    expect(coreConfigFromEnv({ MONGODB_URI: "mongodb://h/mydb", MONGODB_DB: "" }).mongo?.dbName).toBe("mydb");
    expect(coreConfigFromEnv({ MONGODB_URI: "mongodb://h/?replicaSet=rs0" }).mongo?.dbName).toBe("convmark");
  });
});
