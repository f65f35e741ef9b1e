/** The storage contract, run against every adapter (SQLite always; MongoDB when MONGODB_URI is set). */
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConvType, type ConvKey, type ConversationRecord, type ValidUpdate } from "../../src/domain/conversation.js";
import { maskOf } from "../../src/domain/marks.js";
import { type ApplyOutcome, type Change, type ChangePage, type ListFilter, type MarkStore, type StoreLimits } from "../../src/store/store.js";

export interface OpenStore {
  (opts: { limits: StoreLimits; now: () => number; tombstoneRetentionMs?: number }): Promise<MarkStore>;
}

export interface StoreTraits {
  /**
   * The every-owner feed is in one store-wide commit order (SQLite: one sequence every write takes);
   * otherwise in each owner's commit order (MongoDB: change stream order, and the initial scan by
   * owner). Both give every change after a cursor exactly once, each conversation in its latest state.
   */
  readonly storeWideOrder: boolean;
}

const LIMITS: StoreLimits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
const NO_FILTER: ListFilter = { marksAll: 0n, marksAny: 0n, marksNone: 0n, labelsAny: [] };

export function key(owner: string, conversationId: string, type: ConvType = ConvType.Direct): ConvKey {
  return { owner, type, conversationId };
}

export function upd(k: ConvKey, u: Partial<Omit<ValidUpdate, "key">> & { set?: number[]; clear?: number[] } = {}): ValidUpdate {
  return {
    key: k,
    setMask: u.setMask ?? maskOf(u.set ?? []),
    clearMask: u.clearMask ?? maskOf(u.clear ?? []),
    ...(u.customMark !== undefined ? { customMark: u.customMark } : {}),
    addLabels: u.addLabels ?? [],
    removeLabels: u.removeLabels ?? [],
    settings: u.settings ?? {},
    ...(u.vendorConversationId !== undefined ? { vendorConversationId: u.vendorConversationId } : {}),
  };
}

function ok(o: ApplyOutcome | undefined) {
  if (!o?.ok) throw new Error(`expected success, got ${JSON.stringify(o && !o.ok ? o.failure : o)}`);
  return o;
}

/** Every change after `after`, page by page, as "conversationId@position" (tombstones with a "-"). */
async function feedOf(s: MarkStore, owner: string | undefined, after = 0n, limit = 2): Promise<{ items: string[]; last: bigint; pages: ChangePage[] }> {
  const items: string[] = [];
  const pages: ChangePage[] = [];
  let cur = after;
  for (let i = 0; i < 100; i++) {
    const p = await s.changes({ ...(owner !== undefined ? { owner } : {}), after: cur, limit });
    pages.push(p);
    items.push(...p.changes.map(show));
    cur = p.last;
    if (!p.hasMore) break;
  }
  return { items, last: cur, pages };
}

function show(c: Change): string {
  return `${c.deleted ? "-" : ""}${c.record.key.conversationId}@${c.record.position}`;
}

export function describeStoreContract(name: string, open: OpenStore, traits: StoreTraits): void {
  describe(`store contract: ${name}`, () => {
    let clock = 1_700_000_000_000;
    const now = () => clock;
    const stores: MarkStore[] = [];
    const fresh = async (limits: Partial<StoreLimits> = {}, tombstoneRetentionMs?: number) => {
      const s = await open({ limits: { ...LIMITS, ...limits }, now, ...(tombstoneRetentionMs !== undefined ? { tombstoneRetentionMs } : {}) });
      stores.push(s);
      return s;
    };
    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
    });

    it("sets and clears marks, keeping all 64 bits exact", async () => {
      const s = await fresh();
      const k = key("alice", "bob");
      const [a] = await s.applyUpdates([upd(k, { set: [1, 2, 33, 64] })]);
      const r = ok(a).record;
      expect(r.marks).toBe((1n << 63n) | (1n << 32n) | 3n);
      expect(r.version).toBe(1n);
      expect(r.updateTimeMs).toBe(clock);
      clock += 1000;
      const [b] = await s.applyUpdates([upd(k, { clear: [1, 64] })]);
      expect(ok(b).record.marks).toBe((1n << 32n) | 2n);
      const got = await s.get(k);
      expect(got?.marks).toBe((1n << 32n) | 2n);
      expect(got?.version).toBe(2n);
      expect(got?.updateTimeMs).toBe(clock);
    });

    it("treats an update that changes nothing as a no-op: no version bump, no position", async () => {
      const s = await fresh();
      const k = key("alice", "bob");
      const first = ok((await s.applyUpdates([upd(k, { set: [3], customMark: "x", settings: { pinned: true } })]))[0]);
      clock += 5;
      const again = ok((await s.applyUpdates([upd(k, { set: [3], customMark: "x", settings: { pinned: true } })]))[0]);
      expect(again.changed).toBe(false);
      expect(again.record.version).toBe(first.record.version);
      expect(again.record.position).toBe(first.record.position);
      expect((await s.get(k))?.updateTimeMs).toBe(first.record.updateTimeMs);
      const never = ok((await s.applyUpdates([upd(key("alice", "nobody"), { clear: [1] })]))[0]);
      expect(never.changed).toBe(false);
      expect(never.record.version).toBe(0n);
      expect(await s.get(key("alice", "nobody"))).toBeUndefined();
    });

    it("keeps custom mark, labels and settings with presence", async () => {
      const s = await fresh();
      const k = key("u1", "g1", ConvType.Group);
      await s.applyUpdates([upd(k, { customMark: "vip", addLabels: ["work", "b", "a"], settings: { pinned: true, ex: "e" } })]);
      await s.applyUpdates([upd(k, { removeLabels: ["b"], settings: { receiveOption: 3, burnDurationSeconds: 30 } })]);
      let r = await s.get(k);
      expect(r?.customMark).toBe("vip");
      expect(r?.labels).toEqual(["a", "work"]);
      expect(r?.settings).toEqual({ pinned: true, ex: "e", receiveOption: 3, burnDurationSeconds: 30 });
      await s.applyUpdates([upd(k, { customMark: "", settings: { pinned: false, attachedInfo: "" } })]);
      r = await s.get(k);
      expect(r?.customMark).toBe("");
      expect(r?.settings).toEqual({ pinned: false, ex: "e", receiveOption: 3, burnDurationSeconds: 30, attachedInfo: "" });
      expect(r?.key).toEqual(k);
      expect(r?.version).toBe(3n);
    });

    it("gives every effective change the next position of its owner's stream", async () => {
      const s = await fresh();
      const out = await s.applyUpdates([
        upd(key("a", "1"), { set: [1] }),
        upd(key("b", "1"), { set: [1] }),
        upd(key("a", "2"), { set: [1] }),
        upd(key("a", "1"), { set: [1] }), // no-op
        upd(key("a", "1"), { set: [2] }),
      ]);
      expect(out.map((o) => ok(o).record.position)).toEqual([1n, 1n, 2n, 1n, 3n]);
      const next = ok((await s.applyUpdates([upd(key("a", "3"), { set: [5] })]))[0]);
      expect(next.record.position).toBe(4n);
    });

    it("enforces the per-owner cap on marked conversations, item by item", async () => {
      const s = await fresh({ maxMarkedPerOwner: 3 });
      const out = await s.applyUpdates([
        upd(key("o", "1"), { set: [1] }),
        upd(key("o", "2"), { customMark: "c" }),
        upd(key("o", "3"), { addLabels: ["l"] }),
        upd(key("o", "4"), { set: [2] }),
        upd(key("o", "5"), { settings: { pinned: true } }), // settings alone do not count
        upd(key("o", "1"), { set: [7] }), // already marked: allowed
        upd(key("other", "1"), { set: [1] }), // another owner
      ]);
      expect(out.map((o) => (o.ok ? "ok" : o.failure.code))).toEqual(["ok", "ok", "ok", Code.ResourceExhausted, "ok", "ok", "ok"]);
      expect(await s.get(key("o", "4"))).toBeUndefined();
      // Unmarking frees a slot.
      await s.applyUpdates([upd(key("o", "1"), { clear: [1, 7] })]);
      const [again] = await s.applyUpdates([upd(key("o", "4"), { set: [2] })]);
      expect(ok(again).record.marks).toBe(2n);
    });

    it("holds the cap under many concurrent callers", async () => {
      const s = await fresh({ maxMarkedPerOwner: 10 });
      const calls = Array.from({ length: 60 }, (_, i) => s.applyUpdates([upd(key("busy", `c${i}`), { set: [1 + (i % 64)] })]));
      const results = (await Promise.all(calls)).flat();
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(results.filter((r) => !r.ok && r.failure.code === Code.ResourceExhausted)).toHaveLength(50);
      const page = await s.list({ owner: "busy", filter: NO_FILTER, limit: 100 });
      expect(page.records).toHaveLength(10);
    });

    it("never loses a bit when concurrent callers set and clear different marks", async () => {
      const s = await fresh();
      const k = key("race", "conv");
      await s.applyUpdates([upd(k, { set: [2, 4, 6, 8, 10, 12, 14, 16] })]);
      const setters = Array.from({ length: 64 }, (_, i) => i + 1)
        .filter((m) => m % 2 === 1)
        .map((m) => s.applyUpdates([upd(k, { set: [m] })]));
      const clearers = [2, 4, 6, 8].map((m) => s.applyUpdates([upd(k, { clear: [m] })]));
      await Promise.all([...setters, ...clearers]);
      const expected = maskOf([...Array.from({ length: 32 }, (_, i) => 2 * i + 1), 10, 12, 14, 16]);
      const r = await s.get(k);
      expect(r?.marks).toBe(expected);
      expect(r?.version).toBe(1n + 32n + 4n);
    });

    it("limits labels per conversation", async () => {
      const s = await fresh({ maxLabelsPerConversation: 2 });
      const k = key("l", "1");
      const out = await s.applyUpdates([upd(k, { addLabels: ["a", "b"] }), upd(k, { addLabels: ["c"] }), upd(k, { addLabels: ["a"] })]);
      expect(out.map((o) => (o.ok ? "ok" : o.failure.code))).toEqual(["ok", Code.ResourceExhausted, "ok"]);
      expect((await s.get(k))?.labels).toEqual(["a", "b"]);
    });

    it("reads many keys in request order, missing ones undefined", async () => {
      const s = await fresh();
      await s.applyUpdates([upd(key("a", "x"), { set: [1] }), upd(key("a", "y", ConvType.Group), { set: [2] })]);
      const got = await s.batchGet([key("a", "y", ConvType.Group), key("a", "missing"), key("a", "x"), key("a", "y")]);
      expect(got.map((r) => r?.marks)).toEqual([2n, undefined, 1n, undefined]);
    });

    it("lists newest change first with stable pages and every filter", async () => {
      const s = await fresh();
      await s.applyUpdates([
        upd(key("o", "d1"), { set: [1, 2] }),
        upd(key("o", "g1", ConvType.Group), { set: [2], addLabels: ["work"] }),
        upd(key("o", "d2"), { set: [3], settings: { pinned: true } }),
        upd(key("o", "d3"), { set: [64], addLabels: ["home"] }),
        upd(key("o", "g2", ConvType.Group), { settings: { pinned: false } }),
        upd(key("someone-else", "d1"), { set: [1, 2] }),
      ]);
      await s.applyUpdates([upd(key("o", "d1"), { set: [5] })]); // d1 becomes the newest
      const ids = async (filter: Partial<ListFilter>, limit = 100) =>
        (await s.list({ owner: "o", filter: { ...NO_FILTER, ...filter }, limit })).records.map((r) => r.key.conversationId);

      expect(await ids({})).toEqual(["d1", "g2", "d3", "d2", "g1"]);
      expect(await ids({ marksAll: maskOf([1, 2]) })).toEqual(["d1"]);
      expect(await ids({ marksAny: maskOf([2, 64]) })).toEqual(["d1", "d3", "g1"]);
      expect(await ids({ marksNone: maskOf([2]) })).toEqual(["g2", "d3", "d2"]);
      expect(await ids({ marksAny: maskOf([64]) })).toEqual(["d3"]);
      expect(await ids({ type: ConvType.Group })).toEqual(["g2", "g1"]);
      expect(await ids({ labelsAny: ["work", "home"] })).toEqual(["d3", "g1"]);
      expect(await ids({ pinned: true })).toEqual(["d2"]);
      expect(await ids({ pinned: false })).toEqual(["d1", "g2", "d3", "g1"]);

      const seen: string[] = [];
      let before: bigint | undefined;
      for (let pages = 0; pages < 10; pages++) {
        const page = await s.list({ owner: "o", filter: NO_FILTER, limit: 2, ...(before !== undefined ? { before } : {}) });
        seen.push(...page.records.map((r) => r.key.conversationId));
        if (page.nextBefore === undefined) break;
        before = page.nextBefore;
        // A write between pages to a not-yet-seen conversation moves it to the front; the cursor
        // must neither repeat nor skip the others.
        if (pages === 0) await s.applyUpdates([upd(key("o", "new"), { set: [9] })]);
      }
      expect(seen).toEqual(["d1", "g2", "d3", "d2", "g1"]);
    });

    it("keeps a vendor conversation ID verbatim, finds an owner's conversations by it, and keeps it in the tombstone", async () => {
      const s = await fresh();
      const first = await s.applyUpdates([
        upd(key("o", "b"), { vendorConversationId: "si_b_o", settings: { pinned: true } }),
        upd(key("o", "g", ConvType.Group), { vendorConversationId: "my custom ID" }),
        upd(key("p", "b"), { vendorConversationId: "my custom ID" }),
        upd(key("o", "c"), { set: [1] }),
      ]);
      expect(first.map((o) => ok(o).record.vendorConversationId)).toEqual(["si_b_o", "my custom ID", "my custom ID", undefined]);
      // The same ID again changes nothing; another one replaces it.
      const same = ok((await s.applyUpdates([upd(key("o", "b"), { vendorConversationId: "si_b_o" })]))[0]);
      expect([same.changed, same.record.version]).toEqual([false, 1n]);
      expect((await s.get(key("o", "b")))?.vendorConversationId).toBe("si_b_o");
      const byId = (owner: string, ids: string[]) =>
        s.list({ owner, filter: { ...NO_FILTER, vendorConversationIds: ids }, limit: 10 }).then((p) => p.records.map((r) => r.key.conversationId));
      expect(await byId("o", ["my custom ID", "si_b_o", "nope"])).toEqual(["g", "b"]);
      expect(await byId("p", ["my custom ID"])).toEqual(["b"]);
      expect(await byId("o", ["si_o_b"])).toEqual([]);
      // Combined with the other conditions; an empty list is no condition.
      expect((await s.list({ owner: "o", filter: { ...NO_FILTER, pinned: true, vendorConversationIds: ["my custom ID", "si_b_o"] }, limit: 10 })).records.length).toBe(1);
      expect((await s.list({ owner: "o", filter: { ...NO_FILTER, vendorConversationIds: [] }, limit: 10 })).records.length).toBe(3);
      // "" removes it; a write without the field leaves it alone.
      ok((await s.applyUpdates([upd(key("o", "b"), { vendorConversationId: "" })]))[0]);
      expect((await s.get(key("o", "b")))?.vendorConversationId).toBeUndefined();
      expect(await byId("o", ["si_b_o"])).toEqual([]);
      ok((await s.applyUpdates([upd(key("o", "g", ConvType.Group), { set: [2] })]))[0]);
      expect((await s.get(key("o", "g", ConvType.Group)))?.vendorConversationId).toBe("my custom ID");
      // A deletion's tombstone (and its feed entry) names the ID it had; writing it anew starts without one.
      const [del] = await s.deleteConversations([key("o", "g", ConvType.Group)]);
      expect(del?.ok && del.record?.vendorConversationId).toBe("my custom ID");
      const page = await s.changes({ owner: "o", after: 0n, limit: 100 });
      expect(page.changes.filter((c) => c.deleted).map((c) => c.record.vendorConversationId)).toEqual(["my custom ID"]);
      expect(await byId("o", ["my custom ID"])).toEqual([]);
      const anew = ok((await s.applyUpdates([upd(key("o", "g", ConvType.Group), { set: [1] })]))[0]);
      expect(anew.record.vendorConversationId).toBeUndefined();
    });

    it("deletes conversations entirely, frees their place under the cap, and re-creates them anew", async () => {
      const s = await fresh({ maxMarkedPerOwner: 2 });
      await s.applyUpdates([upd(key("o", "a"), { set: [1], addLabels: ["x"], settings: { pinned: true } }), upd(key("o", "b"), { customMark: "m" })]);
      const [capped] = await s.applyUpdates([upd(key("o", "c"), { set: [1] })]);
      expect(capped?.ok).toBe(false);
      clock += 10;
      const out = await s.deleteConversations([key("o", "a"), key("o", "never"), key("o", "a"), key("other", "a")]);
      expect(out.map((o) => o.ok && o.deleted)).toEqual([true, false, false, false]);
      const tomb = out[0]!.ok ? out[0]!.record : undefined;
      expect(tomb).toMatchObject({ key: key("o", "a"), version: 2n, position: 3n, updateTimeMs: clock, marks: 0n, labels: [] });
      expect(await s.get(key("o", "a"))).toBeUndefined();
      expect((await s.batchGet([key("o", "a"), key("o", "b")])).map((r) => r?.customMark)).toEqual([undefined, "m"]);
      expect((await s.list({ owner: "o", filter: NO_FILTER, limit: 10 })).records.map((r) => r.key.conversationId)).toEqual(["b"]);
      // The freed slot can be taken; a deleted conversation written again starts over at version 1.
      const again = await s.applyUpdates([upd(key("o", "c"), { set: [1] }), upd(key("o", "a"), { set: [2] })]);
      expect(again.map((o) => (o.ok ? `${o.record.version}@${o.record.position}` : o.failure.code))).toEqual(["1@4", Code.ResourceExhausted]);
      // A delete and an update of one conversation in one call apply in order.
      const del = await s.deleteConversations([key("o", "c")]);
      expect(del[0]?.ok && del[0].deleted).toBe(true);
      const back = await s.applyUpdates([upd(key("o", "a"), { set: [2] }), upd(key("o", "a"), { set: [3] })]);
      expect(back.map((o) => (o.ok ? `${o.record.version}@${o.record.position}` : o.failure.code))).toEqual(["1@6", "2@7"]);
      const a = await s.get(key("o", "a"));
      expect(a?.settings).toEqual({});
      expect(a?.labels).toEqual([]);
      expect(a?.marks).toBe(6n);
      expect(await s.head("o")).toBe(7n);
    });

    it("feeds one owner's changes in position order, each conversation once in its latest state", async () => {
      const s = await fresh();
      await s.applyUpdates([
        upd(key("o", "a"), { set: [1] }), // 1
        upd(key("o", "b"), { set: [1] }), // 2
        upd(key("x", "a"), { set: [1] }), // another owner
        upd(key("o", "c"), { set: [1] }), // 3
        upd(key("o", "a"), { set: [1] }), // no-op: no change
        upd(key("o", "a"), { set: [2] }), // 4: a again
      ]);
      await s.deleteConversations([key("o", "b")]); // 5
      await s.applyUpdates([upd(key("o", "d"), { customMark: "d" })]); // 6
      const all = await feedOf(s, "o");
      expect(all.items).toEqual(["c@3", "a@4", "-b@5", "d@6"]);
      expect(all.last).toBe(6n);
      expect(all.pages.map((p) => p.hasMore)).toEqual([true, false]);
      const a = all.pages[0]!.changes.find((c) => c.record.key.conversationId === "a")!;
      expect(a.record.marks).toBe(3n);
      expect(a.record.version).toBe(2n);
      const b = all.pages[1]!.changes.find((c) => c.deleted)!;
      expect(b.record).toMatchObject({ key: key("o", "b"), version: 2n, marks: 0n });
      // Resuming from any cursor gives exactly what changed after it.
      expect((await feedOf(s, "o", 3n)).items).toEqual(["a@4", "-b@5", "d@6"]);
      expect((await feedOf(s, "o", 6n)).items).toEqual([]);
      expect((await s.changes({ owner: "o", after: 6n, limit: 5 })).last).toBe(6n);
      // Re-creating a deleted conversation replaces its tombstone.
      await s.applyUpdates([upd(key("o", "b"), { set: [9] })]); // 7
      expect((await feedOf(s, "o", 4n, 10)).items).toEqual(["d@6", "b@7"]);
      expect((await feedOf(s, "nobody")).items).toEqual([]);
    });

    it("resets a cursor older than the retained tombstones, or beyond the head", async () => {
      const day = 24 * 3600 * 1000;
      const s = await fresh({}, day);
      await s.applyUpdates([upd(key("o", "a"), { set: [1] }), upd(key("o", "b"), { set: [1] }), upd(key("o", "c"), { set: [1] })]); // 1..3
      await s.deleteConversations([key("o", "a")]); // 4
      clock += 2 * day;
      await s.deleteConversations([key("o", "b")]); // 5, still retained
      expect(await s.purgeTombstones()).toBe(1);
      const stale = await s.changes({ owner: "o", after: 2n, limit: 10 });
      expect(stale).toEqual({ changes: [], last: 5n, hasMore: false, reset: true });
      // From the purged tombstone on nothing is missing; a fresh reader needs no tombstones.
      expect((await feedOf(s, "o", 4n)).items).toEqual(["-b@5"]);
      expect((await feedOf(s, "o", 0n, 10)).items).toEqual(["c@3", "-b@5"]);
      expect((await s.changes({ owner: "o", after: 99n, limit: 10 })).reset).toBe(true);
      // Another owner's feed is untouched by this owner's purge.
      await s.applyUpdates([upd(key("p", "a"), { set: [1] })]);
      expect((await s.changes({ owner: "p", after: 1n, limit: 10 })).reset).toBe(false);
    });

    it("delivers every change committed after subscribe, in commit order", async () => {
      const s = await fresh();
      await s.applyUpdates([upd(key("o", "before"), { set: [1] })]);
      const got: string[] = [];
      const unsubscribe = s.subscribe((cs) => got.push(...cs.map((c) => `${c.record.key.owner}:${show(c)}`)));
      await s.applyUpdates([upd(key("o", "a"), { set: [1] }), upd(key("p", "a"), { set: [1] })]);
      await s.deleteConversations([key("o", "before")]);
      await s.applyUpdates([upd(key("o", "a"), { set: [1] })]); // no-op
      await s.applyUpdates([upd(key("o", "b"), { set: [1] })]);
      const deadline = Date.now() + 5000;
      while (got.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const mine = got.filter((g) => g.startsWith("o:"));
      expect(mine).toEqual(["o:a@2", "o:-before@3", "o:b@4"]);
      expect(got).toContain("p:a@1");
      unsubscribe();
      await s.applyUpdates([upd(key("o", "c"), { set: [1] })]);
      await new Promise((r) => setTimeout(r, 100));
      expect(got.some((g) => g.includes("c@"))).toBe(false);
    });

    it("feeds every owner's changes, each owner's in commit order, resuming exactly from every cursor", async () => {
      const s = await fresh();
      const who = (p: ChangePage[]) => p.flatMap((x) => x.changes.map((c) => `${c.record.key.owner}:${show(c)}`));
      /** The state a client holds after applying the pages in order: key -> last change. */
      const applied = (p: ChangePage[]) =>
        Object.fromEntries(p.flatMap((x) => x.changes.map((c) => [`${c.record.key.owner}/${c.record.key.conversationId}`, show(c)] as const)));
      /** Each owner's positions strictly increase across the pages (commit order per owner). */
      const ascendingPerOwner = (p: ChangePage[]) => {
        const last = new Map<string, bigint>();
        for (const c of p.flatMap((x) => x.changes)) {
          expect(c.record.position > (last.get(c.record.key.owner) ?? 0n), show(c)).toBe(true);
          last.set(c.record.key.owner, c.record.position);
        }
      };
      await s.applyUpdates([upd(key("o", "a"), { set: [1] }), upd(key("p", "a"), { set: [1] })]);
      const mid = await s.head();
      // One transaction of one owner with three changes, then a batch of two owners, then a delete.
      await s.applyUpdates([upd(key("q", "z"), { set: [1] }), upd(key("q", "y"), { set: [1] }), upd(key("q", "x"), { set: [1] })]);
      await s.applyUpdates([upd(key("q", "z"), { set: [2] }), upd(key("o", "a"), { set: [2] })]);
      await s.deleteConversations([key("p", "a")]);
      const final = { "o/a": "a@2", "p/a": "-a@2", "q/x": "x@3", "q/y": "y@2", "q/z": "z@4" };
      const all = await feedOf(s, undefined, 0n, 2);
      const seqs = all.pages.flatMap((p) => p.changes.map((c) => c.seq));
      expect(seqs).toEqual([...seqs].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
      expect(applied(all.pages)).toEqual(final);
      ascendingPerOwner(all.pages);
      if (traits.storeWideOrder) expect(who(all.pages)).toEqual(["q:y@2", "q:x@3", "q:z@4", "o:a@2", "p:-a@2"]);
      expect(all.last <= (await s.head())).toBe(true);
      expect((await feedOf(s, undefined, all.last)).items).toEqual([]);
      // From a cursor taken between writes: what came after it (nothing from before: not a@1), at every page size.
      for (const limit of [1, 2, 10]) {
        const since = await feedOf(s, undefined, mid, limit);
        expect(applied(since.pages), `limit ${limit}`).toEqual(final);
        expect(since.items).not.toContain("a@1");
        ascendingPerOwner(since.pages);
        if (traits.storeWideOrder) expect(since.items).toEqual(["y@2", "x@3", "z@4", "a@2", "-a@2"]);
      }
      // Every cursor of a one-change-at-a-time read resumes with exactly the changes after it.
      const single = await feedOf(s, undefined, mid, 1);
      for (const [i, page] of single.pages.entries()) {
        const rest = await feedOf(s, undefined, page.last, 10);
        const later = single.pages.slice(i + 1);
        expect(applied(rest.pages), `after cursor ${i}`).toEqual(applied(later));
        for (const item of who(rest.pages)) expect(who(later)).toContain(item);
      }
    });

    it("hands live changes the every-owner feed value that reading the feed gives them", async () => {
      const s = await fresh();
      const got: Change[] = [];
      const unsubscribe = s.subscribe((cs) => got.push(...cs));
      const before = await s.head();
      await s.applyUpdates([upd(key("o", "a"), { set: [1] }), upd(key("p", "b"), { set: [1] })]);
      await s.deleteConversations([key("o", "a")]);
      const deadline = Date.now() + 5000;
      while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      unsubscribe();
      // The two owners' transactions of one call may commit in either order.
      expect(got.map(show).sort()).toEqual(["-a@2", "a@1", "b@1"]);
      expect(got.at(-1) && show(got.at(-1)!)).toBe("-a@2");
      // A Watch skips live changes at or before its cursor by this value: it must be past the head
      // taken before the write, strictly increasing, and the value Sync reports for the same change.
      expect(got.every((c) => c.seq > before)).toBe(true);
      expect(got.map((c) => c.seq)).toEqual([...new Set(got.map((c) => c.seq))].sort((x, y) => (x < y ? -1 : 1)));
      const read = await feedOf(s, undefined, before, 10);
      expect(read.items).toEqual(["b@1", "-a@2"]);
      const liveSeq = (item: string) => got.find((c) => show(c) === item)!.seq;
      expect(read.pages.flatMap((p) => p.changes.map((c) => c.seq))).toEqual([liveSeq("b@1"), liveSeq("-a@2")]);
    });

    describe("restoreConversations", () => {
      const state = (k: ConvKey, over: Partial<ConversationRecord> = {}): ConversationRecord => ({
        key: k,
        marks: (1n << 63n) | 1n,
        customMark: "vip",
        labels: ["a", "b"],
        settings: { pinned: true, receiveOption: 3, ex: "" },
        version: 7n,
        updateTimeMs: 1_600_000_000_123,
        position: 0n,
        vendorConversationId: "si_x_y",
        ...over,
      });
      const strip = (r: ConversationRecord | undefined) => r && { ...r, position: 0n };

      it("writes whole states with their version and update time, empty ones too, into the feed", async () => {
        const s = await fresh();
        const full = state(key("rs", "full"));
        const empty = state(key("rs", "empty", ConvType.Group), { marks: 0n, customMark: "", labels: [], settings: {}, version: 3n, vendorConversationId: undefined });
        delete (empty as { vendorConversationId?: string }).vendorConversationId;
        const out = await s.restoreConversations([full, empty]);
        expect(out.map((o) => ok(o).changed)).toEqual([true, true]);
        expect(strip(await s.get(full.key))).toEqual(full);
        expect(strip(await s.get(empty.key))).toEqual(empty);
        const feed = await s.changes({ owner: "rs", after: 0n, limit: 10 });
        expect(feed.changes.map((c) => [c.record.key.conversationId, c.record.version, c.record.updateTimeMs])).toEqual([
          ["full", 7n, full.updateTimeMs],
          ["empty", 3n, empty.updateTimeMs],
        ]);
        // Only the marked one counts against the cap; a normal write continues from the restored version.
        clock += 1;
        expect(ok((await s.applyUpdates([upd(empty.key, { set: [2] })]))[0]).record.version).toBe(4n);
      });

      it("restores only over nothing or an older version; as new or newer is kept (changed false)", async () => {
        const s = await fresh();
        const k = key("rs2", "c");
        ok((await s.applyUpdates([upd(k, { set: [4] })]))[0]); // version 1
        const older = ok((await s.restoreConversations([state(k, { version: 1n, customMark: "other" })]))[0]);
        expect(older.changed).toBe(false);
        expect(older.record.customMark).toBe("");
        const newer = ok((await s.restoreConversations([state(k, { version: 5n })]))[0]);
        expect(newer.changed).toBe(true);
        expect(strip(await s.get(k))).toEqual(state(k, { version: 5n }));
        expect(ok((await s.restoreConversations([state(k, { version: 5n })]))[0]).changed).toBe(false);
        // Deleted in the target: restored anew, and the tombstone is gone from the feed.
        await s.deleteConversations([k]);
        expect(ok((await s.restoreConversations([state(k, { version: 2n })]))[0]).changed).toBe(true);
        const feed = await s.changes({ owner: "rs2", after: 0n, limit: 10 });
        expect(feed.changes.map(show).filter((x) => x.startsWith("-"))).toEqual([]);
        expect((await s.get(k))?.version).toBe(2n);
      });

      it("holds the marked cap and the label limit per item", async () => {
        const s = await fresh({ maxMarkedPerOwner: 1, maxLabelsPerConversation: 2 });
        const out = await s.restoreConversations([
          state(key("rs3", "a")),
          state(key("rs3", "b")),
          state(key("rs3", "c"), { marks: 0n, customMark: "", labels: [] }),
        ]);
        expect(ok(out[0]).changed).toBe(true);
        expect(out[1]).toMatchObject({ ok: false, failure: { code: Code.ResourceExhausted } });
        expect(ok(out[2]).changed).toBe(true);
        expect(await s.get(key("rs3", "b"))).toBeUndefined();
        const s2 = await fresh({ maxLabelsPerConversation: 1 });
        expect((await s2.restoreConversations([state(key("rs4", "a"))]))[0]).toMatchObject({ ok: false, failure: { code: Code.ResourceExhausted } });
      });
    });
  });
}
