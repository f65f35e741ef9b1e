/** The storage contract, run against every adapter (SQLite always; MongoDB when MONGODB_URI is set). */
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConvType, type ConvKey, type ValidUpdate } from "../../src/domain/conversation.js";
import { maskOf } from "../../src/domain/marks.js";
import type { ApplyOutcome, ListFilter, MarkStore, StoreLimits } from "../../src/store/store.js";

export interface OpenStore {
  (opts: { limits: StoreLimits; now: () => number }): Promise<MarkStore>;
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
  };
}

function ok(o: ApplyOutcome | undefined) {
  if (!o?.ok) throw new Error(`expected success, got ${JSON.stringify(o && !o.ok ? o.failure : o)}`);
  return o;
}

export function describeStoreContract(name: string, open: OpenStore): void {
  describe(`store contract: ${name}`, () => {
    let clock = 1_700_000_000_000;
    const now = () => clock;
    const stores: MarkStore[] = [];
    const fresh = async (limits: Partial<StoreLimits> = {}) => {
      const s = await open({ limits: { ...LIMITS, ...limits }, now });
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
  });
}
