import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config.js";
import { directoryConfigFromEnv } from "../../src/directory/config.js";
import { createDirectoryLookup } from "../../src/directory/lookup.js";
import type { DirectoryStore } from "../../src/directory/store.js";

describe("directoryConfigFromEnv", () => {
  it.each([
    [undefined, false],
    ["", false],
    ["0", false],
    ["false", false],
    ["FALSE", false],
    ["1", true],
    ["true", true],
    [" True ", true],
  ])("CONVMARK_STRICT_DIRECTORY=%j → strict %s", (value, strict) => {
    const env: NodeJS.ProcessEnv = value === undefined ? {} : { CONVMARK_STRICT_DIRECTORY: value };
    expect(directoryConfigFromEnv(env)).toEqual({ strict });
  });

  it.each(["yes", "on", "2", "-1", "t", "enabled"])("refuses CONVMARK_STRICT_DIRECTORY=%j with a ConfigError naming the variable", (value) => {
    let caught: unknown;
    try {
      directoryConfigFromEnv({ CONVMARK_STRICT_DIRECTORY: value });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(/CONVMARK_STRICT_DIRECTORY/);
    expect((caught as Error).message).toMatch(/"1", "true", "0" or "false"/);
  });

  it("ignores unrelated variables", () => {
    expect(directoryConfigFromEnv({ PORT: "x", CONVMARK_STRICT_DIRECTORY: "1" })).toEqual({ strict: true });
  });
});

describe("createDirectoryLookup", () => {
  const untouchable = new Proxy({} as DirectoryStore, {
    get() {
      throw new Error("the store must not be read when not strict");
    },
  });

  it("answers permissively without reading the store when not strict", async () => {
    const l = createDirectoryLookup(untouchable, { strict: false });
    expect(l.strict).toBe(false);
    expect(await l.usersExist(["a", "b"])).toEqual([true, true]);
    expect(await l.groups(["g"])).toEqual([{ groupId: "g", dismissed: false }]);
    expect(await l.areMembers("g", ["a"])).toEqual([true]);
    expect(await l.memberships([{ groupId: "g", userId: "a" }])).toEqual([true]);
  });

  it("asks the store once per call for the distinct IDs, answering in input order", async () => {
    const asked: unknown[] = [];
    const store = {
      getUsers: async (ids: readonly string[]) => (asked.push(["users", [...ids]]), ids.map((u) => (u === "a" ? { userId: u, registerTimeMs: 1 } : undefined))),
      getGroups: async (ids: readonly string[]) =>
        (asked.push(["groups", [...ids]]), ids.map((g) => (g === "x" ? undefined : { groupId: g, dismissed: g === "d", memberCount: 0, createTimeMs: 0 }))),
      memberships: async (pairs: readonly { groupId: string; userId: string }[]) =>
        (asked.push(["pairs", pairs.map((p) => [p.groupId, p.userId])]), pairs.map((p) => p.userId === "a")),
    } as unknown as DirectoryStore;
    const l = createDirectoryLookup(store, { strict: true });
    expect(await l.usersExist(["a", "b", "a", "c"])).toEqual([true, false, true, false]);
    expect(await l.groups(["g", "x", "d", "g"])).toEqual([{ groupId: "g", dismissed: false }, undefined, { groupId: "d", dismissed: true }, { groupId: "g", dismissed: false }]);
    expect(await l.areMembers("g\u0000", ["a", "b", "a"])).toEqual([true, false, true]);
    expect(await l.memberships([{ groupId: "g", userId: "b" }, { groupId: "h", userId: "a" }, { groupId: "g", userId: "b" }])).toEqual([false, true, false]);
    expect(asked).toEqual([
      ["users", ["a", "b", "c"]],
      ["groups", ["g", "x", "d"]],
      ["pairs", [["g\u0000", "a"], ["g\u0000", "b"]]],
      ["pairs", [["g", "b"], ["h", "a"]]],
    ]);
  });
});
