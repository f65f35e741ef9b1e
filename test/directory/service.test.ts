/** convmark.v1.DirectoryService in process: a Connect client over a router transport, SQLite in memory. */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { DirectoryService, type IdResult } from "../../gen/convmark/v1/directory_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createDirectoryService, idProblem, type DirectoryServiceOptions } from "../../src/directory/service.js";
import { openSqliteDirectory } from "../../src/directory/sqlite-directory.js";
import type { DirectoryStore } from "../../src/directory/store.js";

type DirClient = Client<typeof DirectoryService>;
const T0 = 1_700_000_000_000;
let clock = T0;
const stores: DirectoryStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

function setup(opts: DirectoryServiceOptions = {}, wrap: (s: DirectoryStore) => DirectoryStore = (s) => s): { client: DirClient; store: DirectoryStore } {
  const store = openSqliteDirectory({ path: ":memory:", now: () => clock });
  stores.push(store);
  const transport = createRouterTransport((r) => r.service(DirectoryService, createDirectoryService(wrap(store), opts)));
  return { client: createClient(DirectoryService, transport), store };
}

async function expectCode(p: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  let result: unknown;
  try {
    result = await p;
  } catch (e) {
    const err = ConnectError.from(e);
    expect(Code[err.code]).toBe(Code[code]);
    if (message) expect(err.rawMessage).toMatch(message);
    return err;
  }
  throw new Error(`expected ${Code[code]}, got success: ${JSON.stringify(result, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
}

const reasonOfError = (e: ConnectError) => e.findDetails(ErrorInfoSchema)[0]?.reason;
const summary = (rs: IdResult[]) => rs.map((r) => [r.id, r.status?.code ?? -1, r.changed]);

describe("DirectoryService users", () => {
  it("registers idempotently, one result per ID in order, a malformed ID failing alone", async () => {
    const { client } = setup();
    const r1 = await client.registerUsers({ userIds: ["alice", "", "bob", "alice", "x".repeat(257)] });
    expect(summary(r1.results)).toEqual([
      ["alice", 0, true],
      ["", Code.InvalidArgument, false],
      ["bob", 0, true],
      ["alice", 0, false],
      ["x".repeat(257), Code.InvalidArgument, false],
    ]);
    expect(r1.results[1]!.status!.message).toMatch(/user_ids\[1\] must not be empty/);
    expect(r1.results[4]!.status!.message).toMatch(/257 bytes, at most 256/);
    const r2 = await client.registerUsers({ userIds: ["bob", "x".repeat(256), "é".repeat(128)] });
    expect(summary(r2.results)).toEqual([
      ["bob", 0, false],
      ["x".repeat(256), 0, true],
      ["é".repeat(128), 0, true],
    ]);
    const got = await client.getUsers({ userIds: ["bob", "carol", "alice"] });
    expect(got.users.map((u) => [u.userId, u.registered])).toEqual([
      ["bob", true],
      ["carol", false],
      ["alice", true],
    ]);
    expect(timestampMs(got.users[0]!.registerTime!)).toBe(T0);
    expect(got.users[1]!.registerTime).toBeUndefined();
  });

  it("checks IDs: 1..256 UTF-8 bytes of well-formed text", async () => {
    // A lone surrogate cannot cross the wire (the codecs replace it), so the check is tested directly.
    expect(idProblem("bad\uD800")).toBe("is not valid UTF-8");
    expect(idProblem("")).toBe("must not be empty");
    expect(idProblem("é".repeat(128))).toBeUndefined();
    expect(idProblem("é".repeat(128) + "x")).toBe("is 257 bytes, at most 256 allowed");
    expect(idProblem("abcd", 3)).toBe("is 4 bytes, at most 3 allowed");
    const { client } = setup();
    await expectCode(client.getUsers({ userIds: ["a", ""] }), Code.InvalidArgument, /user_ids\[1\] must not be empty/);
  });

  it("unregisters idempotently", async () => {
    const { client } = setup();
    await client.registerUsers({ userIds: ["alice"] });
    const r = await client.unregisterUsers({ userIds: ["alice", "nobody", "", "alice"] });
    expect(summary(r.results)).toEqual([
      ["alice", 0, true],
      ["nobody", 0, false],
      ["", Code.InvalidArgument, false],
      ["alice", 0, false],
    ]);
    expect((await client.getUsers({ userIds: ["alice"] })).users[0]!.registered).toBe(false);
  });

  it("refuses empty and oversized batches as a whole with INVALID_ARGUMENT", async () => {
    const { client, store } = setup({ maxIdsPerRequest: 3 });
    await expectCode(client.registerUsers({ userIds: [] }), Code.InvalidArgument, /must not be empty/);
    await expectCode(client.unregisterUsers({ userIds: [] }), Code.InvalidArgument, /must not be empty/);
    await expectCode(client.getUsers({ userIds: [] }), Code.InvalidArgument, /must not be empty/);
    await expectCode(client.registerUsers({ userIds: ["a", "b", "c", "d"] }), Code.InvalidArgument, /4 IDs in user_ids, at most 3/);
    await expectCode(client.getUsers({ userIds: ["a", "b", "c", "d"] }), Code.InvalidArgument, /at most 3/);
    await expectCode(client.createGroup({ groupId: "g", memberUserIds: ["a", "b", "c", "d"] }), Code.InvalidArgument, /at most 3/);
    await expectCode(client.addGroupMembers({ groupId: "g", userIds: [] }), Code.InvalidArgument, /must not be empty/);
    await expectCode(client.removeGroupMembers({ groupId: "g", userIds: ["a", "b", "c", "d"] }), Code.InvalidArgument, /at most 3/);
    expect(await store.getUsers(["a"])).toEqual([undefined]);
    expect(await store.getGroups(["g"])).toEqual([undefined]);
  });

  it("allows 20,000 IDs by default", async () => {
    const { client } = setup();
    const ids = Array.from({ length: 20_000 }, (_, i) => `u${i}`);
    const r = await client.registerUsers({ userIds: ids });
    expect(r.results.every((x) => x.status?.code === 0 && x.changed)).toBe(true);
    await expectCode(client.registerUsers({ userIds: [...ids, "one-more"] }), Code.InvalidArgument, /20001 IDs/);
  });
});

describe("DirectoryService groups", () => {
  it("creates a group, deduplicating and sorting members; ALREADY_EXISTS while it is alive", async () => {
    const { client } = setup();
    const c = await client.createGroup({ groupId: "g1", memberUserIds: ["b", "a", "b"] });
    expect(c.recreated).toBe(false);
    expect(c.group?.groupId).toBe("g1");
    expect(c.group?.memberUserIds).toEqual(["a", "b"]);
    expect(c.group?.memberCount).toBe(2);
    expect(c.group?.dismissed).toBe(false);
    expect(timestampMs(c.group!.createTime!)).toBe(T0);
    expect(c.group?.dismissTime).toBeUndefined();
    await expectCode(client.createGroup({ groupId: "g1", memberUserIds: [] }), Code.AlreadyExists, /already exists/);
    const g = await client.getGroup({ groupId: "g1" });
    expect(g.group?.memberUserIds).toEqual(["a", "b"]);
    const empty = await client.createGroup({ groupId: "g0" });
    expect(empty.group?.memberCount).toBe(0);
  });

  it("validates group and member IDs with INVALID_ARGUMENT, creating nothing", async () => {
    const { client, store } = setup();
    await expectCode(client.createGroup({ groupId: "", memberUserIds: ["a"] }), Code.InvalidArgument, /group_id must not be empty/);
    await expectCode(client.createGroup({ groupId: "g".repeat(257) }), Code.InvalidArgument, /group_id is 257 bytes/);
    await expectCode(client.createGroup({ groupId: "g", memberUserIds: ["a", ""] }), Code.InvalidArgument, /member_user_ids\[1\] must not be empty/);
    expect(await store.getGroups(["g"])).toEqual([undefined]);
    await expectCode(client.addGroupMembers({ groupId: "", userIds: ["a"] }), Code.InvalidArgument, /group_id/);
    await expectCode(client.removeGroupMembers({ groupId: "", userIds: ["a"] }), Code.InvalidArgument, /group_id/);
    await expectCode(client.dismissGroup({ groupId: "" }), Code.InvalidArgument, /group_id/);
    await expectCode(client.getGroup({ groupId: "" }), Code.InvalidArgument, /group_id/);
  });

  it("re-creates a dismissed group with only the new members", async () => {
    const { client } = setup();
    await client.createGroup({ groupId: "g1", memberUserIds: ["a", "b"] });
    await client.dismissGroup({ groupId: "g1" });
    clock = T0 + 5000;
    const c = await client.createGroup({ groupId: "g1", memberUserIds: ["c"] });
    expect(c.recreated).toBe(true);
    expect(c.group?.dismissed).toBe(false);
    expect(c.group?.memberUserIds).toEqual(["c"]);
    expect(timestampMs(c.group!.createTime!)).toBe(T0 + 5000);
    const g = await client.getGroup({ groupId: "g1" });
    expect(g.group?.dismissed).toBe(false);
    expect(g.group?.dismissTime).toBeUndefined();
    expect(g.group?.memberUserIds).toEqual(["c"]);
    clock = T0;
  });

  it("adds and removes members per item, reporting the new count", async () => {
    const { client } = setup();
    await client.createGroup({ groupId: "g1", memberUserIds: ["a"] });
    const add = await client.addGroupMembers({ groupId: "g1", userIds: ["b", "a", "", "c", "b"] });
    expect(summary(add.results)).toEqual([
      ["b", 0, true],
      ["a", 0, false],
      ["", Code.InvalidArgument, false],
      ["c", 0, true],
      ["b", 0, false],
    ]);
    expect(add.memberCount).toBe(3);
    const rm = await client.removeGroupMembers({ groupId: "g1", userIds: ["a", "zzz"] });
    expect(summary(rm.results)).toEqual([
      ["a", 0, true],
      ["zzz", 0, false],
    ]);
    expect(rm.memberCount).toBe(2);
    expect((await client.getGroup({ groupId: "g1" })).group?.memberUserIds).toEqual(["b", "c"]);
    // Only malformed IDs: every item fails, the group is still checked and its count reported.
    const bad = await client.addGroupMembers({ groupId: "g1", userIds: [""] });
    expect(summary(bad.results)).toEqual([["", Code.InvalidArgument, false]]);
    expect(bad.memberCount).toBe(2);
    await expectCode(client.addGroupMembers({ groupId: "nope", userIds: [""] }), Code.NotFound);
  });

  it("answers NOT_FOUND (GROUP_NOT_FOUND) for an unknown group", async () => {
    const { client } = setup();
    for (const p of [
      client.addGroupMembers({ groupId: "nope", userIds: ["a"] }),
      client.removeGroupMembers({ groupId: "nope", userIds: ["a"] }),
      client.dismissGroup({ groupId: "nope" }),
      client.getGroup({ groupId: "nope" }),
    ]) {
      const e = await expectCode(p, Code.NotFound, /group nope does not exist/);
      expect(reasonOfError(e)).toBe("GROUP_NOT_FOUND");
    }
  });

  it("answers FAILED_PRECONDITION (GROUP_DISMISSED) for membership changes of a dismissed group", async () => {
    const { client } = setup();
    await client.createGroup({ groupId: "g1", memberUserIds: ["a"] });
    clock = T0 + 1000;
    const d = await client.dismissGroup({ groupId: "g1" });
    expect(d.changed).toBe(true);
    expect(d.group?.dismissed).toBe(true);
    expect(d.group?.memberUserIds).toEqual(["a"]);
    expect(timestampMs(d.group!.dismissTime!)).toBe(T0 + 1000);
    clock = T0;
    const again = await client.dismissGroup({ groupId: "g1" });
    expect(again.changed).toBe(false);
    expect(timestampMs(again.group!.dismissTime!)).toBe(T0 + 1000);
    for (const p of [
      client.addGroupMembers({ groupId: "g1", userIds: ["b"] }),
      client.removeGroupMembers({ groupId: "g1", userIds: ["a"] }),
      client.addGroupMembers({ groupId: "g1", userIds: [""] }),
    ]) {
      const e = await expectCode(p, Code.FailedPrecondition, /dismissed/);
      expect(reasonOfError(e)).toBe("GROUP_DISMISSED");
    }
    const g = await client.getGroup({ groupId: "g1" });
    expect(g.group?.dismissed).toBe(true);
    expect(g.group?.memberUserIds).toEqual(["a"]);
  });

  it("answers RESOURCE_EXHAUSTED when the store cannot hold the group", async () => {
    const { client } = setup({}, (s) => ({
      ...bind(s),
      createGroup: async () => ({ ok: false, reason: "too_large" }),
      addMembers: async () => ({ ok: false, reason: "too_large" }),
    }));
    await expectCode(client.createGroup({ groupId: "g", memberUserIds: ["a"] }), Code.ResourceExhausted);
    await expectCode(client.addGroupMembers({ groupId: "g", userIds: ["a"] }), Code.ResourceExhausted);
  });

  it("answers INTERNAL when the store fails, with the cause in the message", async () => {
    const boom = async (): Promise<never> => {
      throw new Error("disk on fire");
    };
    const { client } = setup({}, (s) => ({ ...bind(s), registerUsers: boom, getGroups: boom, createGroup: boom, dismissGroup: boom }));
    await expectCode(client.registerUsers({ userIds: ["a"] }), Code.Internal, /directory store: disk on fire/);
    await expectCode(client.getGroup({ groupId: "g" }), Code.Internal, /disk on fire/);
    await expectCode(client.createGroup({ groupId: "g" }), Code.Internal, /disk on fire/);
    await expectCode(client.dismissGroup({ groupId: "g" }), Code.Internal, /disk on fire/);
  });
});

/** The store's methods as own properties, so a test can override some of them with a spread. */
function bind(s: DirectoryStore): DirectoryStore {
  return {
    registerUsers: (ids) => s.registerUsers(ids),
    unregisterUsers: (ids) => s.unregisterUsers(ids),
    getUsers: (ids) => s.getUsers(ids),
    createGroup: (g, m) => s.createGroup(g, m),
    addMembers: (g, ids) => s.addMembers(g, ids),
    removeMembers: (g, ids) => s.removeMembers(g, ids),
    dismissGroup: (g) => s.dismissGroup(g),
    getGroups: (ids) => s.getGroups(ids),
    getMembers: (g) => s.getMembers(g),
    memberships: (p) => s.memberships(p),
    close: () => s.close(),
  };
}
