/** Strict mode through MarkService in process: the directory guard decides per update, before any write. */
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationType, MarkService, type UpdateResult } from "../../gen/convmark/v1/mark_service_pb.js";
import type { DirectoryLookup } from "../../src/directory/directory.js";
import { createDirectoryGuard } from "../../src/directory/guard.js";
import { createDirectoryLookup } from "../../src/directory/lookup.js";
import { openSqliteDirectory } from "../../src/directory/sqlite-directory.js";
import type { DirectoryStore } from "../../src/directory/store.js";
import { ConvType } from "../../src/domain/conversation.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { reasonOf } from "../../src/service/convert.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { MarkStore } from "../../src/store/store.js";

const DIRECT = ConversationType.DIRECT;
const GROUP = ConversationType.GROUP;
const limits = DEFAULT_LIMITS;

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

/** Counts the directory store's calls, to prove batches cost a bounded number of queries. */
interface Counted {
  store: DirectoryStore;
  calls: Record<string, number>;
}

function counted(s: DirectoryStore): Counted {
  const calls: Record<string, number> = {};
  const store = new Proxy(s, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

async function setup(strict: boolean) {
  const directoryStore = openSqliteDirectory({ path: ":memory:" });
  const markStore: MarkStore = openSqliteStore({ path: ":memory:", limits });
  closers.push(() => directoryStore.close(), () => markStore.close());
  const { store, calls } = counted(directoryStore);
  const guard = createDirectoryGuard(createDirectoryLookup(store, { strict }));
  const marks: Client<typeof MarkService> = createClient(
    MarkService,
    createRouterTransport((r) => r.service(MarkService, createMarkService({ store: markStore, limits, guard }))),
  );
  // The directory of every test: alice, bob, erin registered; g1 = {alice, erin}; g2 dismissed with alice.
  await directoryStore.registerUsers(["alice", "bob", "erin"]);
  await directoryStore.createGroup("g1", ["alice", "erin"]);
  await directoryStore.createGroup("g2", ["alice"]);
  await directoryStore.dismissGroup("g2");
  for (const k of Object.keys(calls)) delete calls[k];
  return { marks, calls, directoryStore, markStore };
}

const key = (owner: string, conversationId: string, type: ConversationType) => ({ ownerUserId: owner, type, conversationId });
const star = (owner: string, conversationId: string, type: ConversationType) => ({ key: key(owner, conversationId, type), setMarks: [1] });

function verdict(r: UpdateResult): [string, string | undefined] {
  return [Code[r.status?.code ?? 0] ?? "OK", reasonOf(r.status)];
}

const CASES = [
  { update: star("alice", "bob", DIRECT), strict: ["OK", undefined] },
  { update: star("carol", "bob", DIRECT), strict: [Code[Code.NotFound], "USER_NOT_FOUND"] },
  { update: star("alice", "dave", DIRECT), strict: [Code[Code.NotFound], "PEER_NOT_FOUND"] },
  { update: star("alice", "nogroup", GROUP), strict: [Code[Code.NotFound], "GROUP_NOT_FOUND"] },
  { update: star("alice", "g2", GROUP), strict: [Code[Code.FailedPrecondition], "GROUP_DISMISSED"] },
  { update: star("bob", "g1", GROUP), strict: [Code[Code.PermissionDenied], "NOT_GROUP_MEMBER"] },
  { update: star("alice", "g1", GROUP), strict: ["OK", undefined] },
  // The owner is checked first, then the peer or the group.
  { update: star("carol", "nogroup", GROUP), strict: [Code[Code.NotFound], "USER_NOT_FOUND"] },
  { update: star("carol", "dave", DIRECT), strict: [Code[Code.NotFound], "USER_NOT_FOUND"] },
  { update: star("bob", "g2", GROUP), strict: [Code[Code.FailedPrecondition], "GROUP_DISMISSED"] },
  // A group ID that happens to be a user ID is still looked up as a group, and vice versa.
  { update: star("bob", "alice", GROUP), strict: [Code[Code.NotFound], "GROUP_NOT_FOUND"] },
  { update: star("alice", "g1", DIRECT), strict: [Code[Code.NotFound], "PEER_NOT_FOUND"] },
  { update: star("erin", "g1", GROUP), strict: ["OK", undefined] },
] as const;

describe("directory guard through MarkService", () => {
  it("strict: refuses each case with its code and reason, applies the others, writes nothing refused", async () => {
    const { marks } = await setup(true);
    const res = await marks.updateConversations({ updates: CASES.map((c) => c.update) });
    expect(res.results.map(verdict)).toEqual(CASES.map((c) => c.strict));
    // Failed results carry no state; successful ones the new state.
    res.results.forEach((r, i) => {
      if (CASES[i]!.strict[0] === "OK") expect(r.conversation?.marks).toEqual([1]);
      else expect(r.conversation).toBeUndefined();
    });
    const stored = await marks.batchGetConversations({ keys: CASES.map((c) => c.update.key) });
    expect(stored.conversations.map((c) => c.version)).toEqual(CASES.map((c) => (c.strict[0] === "OK" ? 1n : 0n)));
  });

  it("strict: a failed update is still refused when it repeats within the batch, and validation comes first", async () => {
    const { marks } = await setup(true);
    const res = await marks.updateConversations({
      updates: [star("carol", "bob", DIRECT), { key: key("carol", "bob", DIRECT), setMarks: [65] }, star("carol", "bob", DIRECT), star("alice", "bob", DIRECT)],
    });
    expect(res.results.map(verdict)).toEqual([
      [Code[Code.NotFound], "USER_NOT_FOUND"],
      [Code[Code.InvalidArgument], "FIELD_INVALID"],
      [Code[Code.NotFound], "USER_NOT_FOUND"],
      ["OK", undefined],
    ]);
  });

  it("strict: follows directory changes at once (registration, membership, dismissal)", async () => {
    const { marks, directoryStore } = await setup(true);
    const up = () => marks.updateConversations({ updates: [star("bob", "g1", GROUP)] }).then((r) => verdict(r.results[0]!));
    expect(await up()).toEqual([Code[Code.PermissionDenied], "NOT_GROUP_MEMBER"]);
    await directoryStore.addMembers("g1", ["bob"]);
    expect(await up()).toEqual(["OK", undefined]);
    await directoryStore.unregisterUsers(["bob"]);
    expect(await up()).toEqual([Code[Code.NotFound], "USER_NOT_FOUND"]);
    await directoryStore.registerUsers(["bob"]);
    await directoryStore.dismissGroup("g1");
    expect(await up()).toEqual([Code[Code.FailedPrecondition], "GROUP_DISMISSED"]);
  });

  it("not strict: accepts every well-formed key without reading the directory", async () => {
    const { marks, calls } = await setup(false);
    const res = await marks.updateConversations({ updates: CASES.map((c) => c.update) });
    expect(res.results.map(verdict)).toEqual(CASES.map(() => ["OK", undefined]));
    expect(calls).toEqual({});
  });

  it("strict: a 20,000-update batch costs one query each for users, groups and memberships", async () => {
    const { marks, calls, directoryStore } = await setup(true);
    const users = Array.from({ length: 500 }, (_, i) => `user${i}`);
    await directoryStore.registerUsers(users);
    const groups = Array.from({ length: 100 }, (_, i) => `group${i}`);
    for (const [i, g] of groups.entries()) await directoryStore.createGroup(g, users.filter((_, j) => j % 2 === i % 2));
    for (const k of Object.keys(calls)) delete calls[k];

    const updates = Array.from({ length: 20_000 }, (_, i) => {
      const owner = users[i % users.length]!;
      return i % 2 === 0 ? star(owner, users[(i * 7) % users.length]!, DIRECT) : star(owner, groups[i % groups.length]!, GROUP);
    });
    const res = await marks.updateConversations({ updates });
    expect(calls).toEqual({ getUsers: 1, getGroups: 1, memberships: 1 });
    // Group i has users of the same parity as i; owner index i % 500 has the parity of i, so does group i % 100.
    expect(res.results.every((r) => (r.status?.code ?? 0) === 0)).toBe(true);

    // And with a failing half: members of the other parity.
    for (const k of Object.keys(calls)) delete calls[k];
    const wrong = Array.from({ length: 2_000 }, (_, i) => star(users[(2 * i) % users.length]!, groups[(2 * i + 1) % groups.length]!, GROUP));
    const res2 = await marks.updateConversations({ updates: wrong });
    expect(calls).toEqual({ getUsers: 1, getGroups: 1, memberships: 1 });
    expect(res2.results.every((r) => reasonOf(r.status) === "NOT_GROUP_MEMBER")).toBe(true);
  });

  it("strict: a failing directory rejects the whole call with UNAVAILABLE and writes nothing", async () => {
    const markStore = openSqliteStore({ path: ":memory:", limits });
    closers.push(() => markStore.close());
    const broken: DirectoryLookup = {
      strict: true,
      usersExist: async () => {
        throw new Error("directory offline");
      },
      groups: async (ids) => ids.map(() => undefined),
      areMembers: async (_g, ids) => ids.map(() => false),
    };
    const marks = createClient(
      MarkService,
      createRouterTransport((r) => r.service(MarkService, createMarkService({ store: markStore, limits, guard: createDirectoryGuard(broken) }))),
    );
    const err = await marks.updateConversations({ updates: [star("alice", "bob", DIRECT)] }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err && Code[err.code]).toBe(Code[Code.Unavailable]);
    expect(err?.rawMessage).toMatch(/directory offline/);
    expect(await markStore.get({ owner: "alice", type: ConvType.Direct, conversationId: "bob" })).toBeUndefined();
  });
});

describe("directory guard with a lookup without memberships()", () => {
  it("falls back to one areMembers call per distinct group", async () => {
    const asked: [string, string[]][] = [];
    const lookup: DirectoryLookup = {
      strict: true,
      usersExist: async (ids) => ids.map(() => true),
      groups: async (ids) => ids.map((groupId) => ({ groupId, dismissed: false })),
      areMembers: async (groupId, ids) => {
        asked.push([groupId, [...ids]]);
        return ids.map((u) => u.startsWith(groupId));
      },
    };
    const guard = createDirectoryGuard(lookup);
    const keys = [
      { owner: "ga-1", type: ConvType.Group, conversationId: "ga" },
      { owner: "x", type: ConvType.Group, conversationId: "ga" },
      { owner: "gb-1", type: ConvType.Group, conversationId: "gb" },
      { owner: "ga-1", type: ConvType.Group, conversationId: "ga" },
      { owner: "p", type: ConvType.Direct, conversationId: "q" },
    ];
    const verdicts = await guard(keys);
    expect(verdicts.map((v) => v?.reason)).toEqual([undefined, "NOT_GROUP_MEMBER", undefined, undefined, undefined]);
    expect(asked.sort()).toEqual([
      ["ga", ["ga-1", "x"]],
      ["gb", ["gb-1"]],
    ]);
  });

  it("returns undefined verdicts without asking when the lookup is not strict", async () => {
    const fail = async (): Promise<never> => {
      throw new Error("must not be called");
    };
    const guard = createDirectoryGuard({ strict: false, usersExist: fail, groups: fail, areMembers: fail });
    expect(await guard([{ owner: "a", type: ConvType.Direct, conversationId: "b" }])).toEqual([undefined]);
  });
});
