/** The directory storage contract, run against every adapter (SQLite always; MongoDB when MONGODB_URI is set). */
import { afterEach, describe, expect, it } from "vitest";
import type { DirectoryStore } from "../../src/directory/store.js";

export interface OpenDirectory {
  (opts: { now: () => number }): Promise<DirectoryStore>;
}

/** IDs that trip naive implementations: field-path and operator look-alikes, JSON syntax, NUL, non-BMP. */
export const AWKWARD_IDS = ["$members", "$$ROOT", "a.b", '"quoted"', "[1,2]", "nul\u0000inside", "😀", " space ", "x".repeat(256)];

export function describeDirectoryContract(name: string, open: OpenDirectory): void {
  describe(`directory store contract: ${name}`, () => {
    let clock = 1_700_000_000_000;
    const now = () => clock;
    const stores: DirectoryStore[] = [];
    const fresh = async () => {
      const s = await open({ now });
      stores.push(s);
      return s;
    };
    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
    });

    it("registers users idempotently, the first of repeated IDs counting once", async () => {
      const s = await fresh();
      expect(await s.registerUsers(["alice", "bob", "alice"])).toEqual([true, true, false]);
      clock += 1000;
      expect(await s.registerUsers(["bob", "carol"])).toEqual([false, true]);
      const users = await s.getUsers(["carol", "nobody", "alice", "bob", "alice"]);
      expect(users).toEqual([
        { userId: "carol", registerTimeMs: clock },
        undefined,
        { userId: "alice", registerTimeMs: clock - 1000 },
        { userId: "bob", registerTimeMs: clock - 1000 },
        { userId: "alice", registerTimeMs: clock - 1000 },
      ]);
      expect(await s.getUsers([])).toEqual([]);
    });

    it("unregisters users idempotently", async () => {
      const s = await fresh();
      await s.registerUsers(["alice", "bob"]);
      expect(await s.unregisterUsers(["alice", "nobody", "alice"])).toEqual([true, false, false]);
      expect(await s.unregisterUsers(["alice"])).toEqual([false]);
      expect((await s.getUsers(["alice", "bob"])).map((u) => u?.userId)).toEqual([undefined, "bob"]);
      // Registering again works and takes a new time.
      clock += 7;
      expect(await s.registerUsers(["alice"])).toEqual([true]);
      expect((await s.getUsers(["alice"]))[0]?.registerTimeMs).toBe(clock);
    });

    it("keeps IDs exactly, whatever characters they contain", async () => {
      const s = await fresh();
      expect(await s.registerUsers(AWKWARD_IDS)).toEqual(AWKWARD_IDS.map(() => true));
      expect((await s.getUsers(AWKWARD_IDS)).map((u) => u?.userId)).toEqual(AWKWARD_IDS);
      expect((await s.getUsers(["$members ", "nul"])).every((u) => u === undefined)).toBe(true);
      const c = await s.createGroup("$group.id", AWKWARD_IDS);
      expect(c.ok).toBe(true);
      expect(await s.memberships(AWKWARD_IDS.map((userId) => ({ groupId: "$group.id", userId })))).toEqual(AWKWARD_IDS.map(() => true));
      expect(await s.memberships([{ groupId: "$group.id", userId: "$$ROOT " }, { groupId: "$group", userId: "$members" }])).toEqual([false, false]);
      const add = await s.addMembers("$group.id", ["$members", "$new"]);
      expect(add).toEqual({ ok: true, changed: [false, true], memberCount: AWKWARD_IDS.length + 1 });
      const rm = await s.removeMembers("$group.id", ["$$ROOT", "$absent"]);
      expect(rm).toEqual({ ok: true, changed: [true, false], memberCount: AWKWARD_IDS.length });
      expect(await s.unregisterUsers(["nul\u0000inside", "nul"])).toEqual([true, false]);
    });

    it("creates a group with deduplicated members listed in UTF-8 byte order", async () => {
      const s = await fresh();
      const c = await s.createGroup("g1", ["z", "😀", "A", "é", "～", "z"]);
      expect(c).toEqual({ ok: true, recreated: false, group: { groupId: "g1", dismissed: false, memberCount: 5, createTimeMs: clock } });
      // UTF-8 order puts U+FF5E (EF BD 9E) before U+1F600 (F0 9F 98 80); UTF-16 order would not.
      expect(await s.getMembers("g1")).toEqual(["A", "z", "é", "～", "😀"]);
      expect(await s.getGroups(["g1"])).toEqual([{ groupId: "g1", dismissed: false, memberCount: 5, createTimeMs: clock }]);
      expect(await s.getMembers("nope")).toBeUndefined();
      const empty = await s.createGroup("g0", []);
      expect(empty.ok && empty.group.memberCount).toBe(0);
      expect(await s.getMembers("g0")).toEqual([]);
    });

    it("refuses to create a group that exists and is not dismissed, changing nothing", async () => {
      const s = await fresh();
      await s.createGroup("g1", ["a"]);
      clock += 5;
      expect(await s.createGroup("g1", ["b", "c"])).toEqual({ ok: false, reason: "exists" });
      expect(await s.getMembers("g1")).toEqual(["a"]);
      expect((await s.getGroups(["g1"]))[0]?.createTimeMs).toBe(clock - 5);
    });

    it("creates a dismissed group anew with exactly the given members", async () => {
      const s = await fresh();
      await s.createGroup("g1", ["a", "b"]);
      await s.dismissGroup("g1");
      clock += 100;
      const c = await s.createGroup("g1", ["c", "b"]);
      expect(c).toEqual({ ok: true, recreated: true, group: { groupId: "g1", dismissed: false, memberCount: 2, createTimeMs: clock } });
      expect(await s.getGroups(["g1"])).toEqual([{ groupId: "g1", dismissed: false, memberCount: 2, createTimeMs: clock }]);
      expect(await s.getMembers("g1")).toEqual(["b", "c"]);
      expect(await s.memberships([{ groupId: "g1", userId: "a" }, { groupId: "g1", userId: "c" }])).toEqual([false, true]);
    });

    it("adds and removes members idempotently, reporting each ID and the new count", async () => {
      const s = await fresh();
      await s.createGroup("g1", ["a"]);
      expect(await s.addMembers("g1", ["b", "a", "c", "b"])).toEqual({ ok: true, changed: [true, false, true, false], memberCount: 3 });
      expect(await s.addMembers("g1", ["c"])).toEqual({ ok: true, changed: [false], memberCount: 3 });
      expect(await s.removeMembers("g1", ["a", "x", "a"])).toEqual({ ok: true, changed: [true, false, false], memberCount: 2 });
      expect(await s.getMembers("g1")).toEqual(["b", "c"]);
      expect((await s.getGroups(["g1"]))[0]?.memberCount).toBe(2);
      expect(await s.removeMembers("g1", ["b", "c"])).toEqual({ ok: true, changed: [true, true], memberCount: 0 });
      expect(await s.getMembers("g1")).toEqual([]);
    });

    it("refuses membership changes of a missing or dismissed group, changing nothing", async () => {
      const s = await fresh();
      expect(await s.addMembers("nope", ["a"])).toEqual({ ok: false, reason: "not_found" });
      expect(await s.removeMembers("nope", ["a"])).toEqual({ ok: false, reason: "not_found" });
      expect(await s.getGroups(["nope"])).toEqual([undefined]);
      await s.createGroup("g1", ["a", "b"]);
      await s.dismissGroup("g1");
      expect(await s.addMembers("g1", ["c"])).toEqual({ ok: false, reason: "dismissed" });
      expect(await s.removeMembers("g1", ["a"])).toEqual({ ok: false, reason: "dismissed" });
      expect(await s.getMembers("g1")).toEqual(["a", "b"]);
    });

    it("dismisses a group once, keeping its members", async () => {
      const s = await fresh();
      expect(await s.dismissGroup("nope")).toEqual({ ok: false, reason: "not_found" });
      const created = clock;
      await s.createGroup("g1", ["a", "b"]);
      clock += 60_000;
      const d = await s.dismissGroup("g1");
      const dismissed = { groupId: "g1", dismissed: true, memberCount: 2, createTimeMs: created, dismissTimeMs: clock };
      expect(d).toEqual({ ok: true, changed: true, group: dismissed });
      clock += 1;
      expect(await s.dismissGroup("g1")).toEqual({ ok: true, changed: false, group: dismissed });
      expect(await s.getGroups(["g1"])).toEqual([dismissed]);
      expect(await s.getMembers("g1")).toEqual(["a", "b"]);
      // Membership is stored fact; the guard decides that a dismissed group refuses everyone.
      expect(await s.memberships([{ groupId: "g1", userId: "a" }])).toEqual([true]);
    });

    it("reads groups and memberships in batches, in request order", async () => {
      const s = await fresh();
      await s.createGroup("g1", ["a", "b"]);
      await s.createGroup("g2", ["b", "c"]);
      await s.dismissGroup("g2");
      const groups = await s.getGroups(["g2", "x", "g1", "g2"]);
      expect(groups.map((g) => g && [g.groupId, g.dismissed])).toEqual([["g2", true], undefined, ["g1", false], ["g2", true]]);
      expect(await s.getGroups([])).toEqual([]);
      const pairs = [
        ["g1", "a"],
        ["g1", "c"],
        ["g2", "c"],
        ["x", "a"],
        ["g2", "a"],
        ["g1", "b"],
        ["g1", "a"],
      ].map(([groupId, userId]) => ({ groupId: groupId!, userId: userId! }));
      expect(await s.memberships(pairs)).toEqual([true, false, true, false, false, true, true]);
      expect(await s.memberships([])).toEqual([]);
    });

    it("keeps memberships of users who are unregistered: users and groups are independent", async () => {
      const s = await fresh();
      await s.createGroup("g1", ["ghost"]);
      expect(await s.getUsers(["ghost"])).toEqual([undefined]);
      expect(await s.memberships([{ groupId: "g1", userId: "ghost" }])).toEqual([true]);
      await s.registerUsers(["ghost"]);
      await s.unregisterUsers(["ghost"]);
      expect(await s.getMembers("g1")).toEqual(["ghost"]);
    });

    it("answers 20,000-ID batches", async () => {
      const s = await fresh();
      const ids = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);
      const half = ids.filter((_, i) => i % 2 === 0);
      expect((await s.registerUsers(half)).every(Boolean)).toBe(true);
      const found = await s.getUsers(ids);
      expect(found.map((u) => u !== undefined)).toEqual(ids.map((_, i) => i % 2 === 0));
      await s.createGroup("big", half);
      expect((await s.getGroups(["big"]))[0]?.memberCount).toBe(10_000);
      const add = await s.addMembers("big", ids);
      expect(add.ok && add.changed.filter(Boolean).length).toBe(10_000);
      expect(add.ok && add.memberCount).toBe(20_000);
      const pairs = ids.map((userId, i) => ({ groupId: i % 3 === 0 ? "big" : "none", userId }));
      expect(await s.memberships(pairs)).toEqual(ids.map((_, i) => i % 3 === 0));
    });

    it("refuses to work after close", async () => {
      const s = await open({ now });
      await s.close();
      await expect(s.getUsers(["a"])).rejects.toThrow();
    });
  });
}
