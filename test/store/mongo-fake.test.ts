/**
 * The MongoDB store's own code (grouping, transactions, retries, reads, paging, error mapping) run
 * against the in-memory FakeMongo of ./mongo-model.ts, including the whole shared contract suite.
 * This runs everywhere; the same suite against a real server is test/store/mongo.test.ts.
 */
import { Code } from "@connectrpc/connect";
import { Long, MongoNetworkError, MongoServerError } from "mongodb";
import { describe, expect, it } from "vitest";
import { isMarked } from "../../src/domain/conversation.js";
import { docToRecord } from "../../src/store/mongo-updates.js";
import { openMongoStore } from "../../src/store/mongo-store.js";
import { describeStoreContract, key, upd } from "./contract.js";
import { FakeMongo } from "./mongo-model.js";

const LIMITS = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };

describeStoreContract("mongodb (in-memory fake driver)", async ({ limits, now }) =>
  openMongoStore({ uri: "mongodb://fake/convmark", limits, now, client: new FakeMongo().client() }),
);

describe("mongodb store on the fake driver", () => {
  it("creates the unique key index and the owner/position index", async () => {
    const fake = new FakeMongo();
    const s = await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: fake.client() });
    expect(fake.indexes).toEqual([
      { collection: "conversations", spec: { owner: 1, type: 1, cid: 1 }, options: { unique: true, name: "owner_type_cid" } },
      { collection: "conversations", spec: { owner: 1, position: -1 }, options: { name: "owner_position" } },
    ]);
    expect(fake.commands).toEqual([{ hello: 1 }]);
    expect(fake.created).toEqual(["owners"]);
    await s.close();
    // Reopening an existing database is fine (NamespaceExists is ignored).
    await (await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: fake.client() })).close();
    expect(fake.closed).toBe(false); // a client passed in belongs to the caller
  });

  it("refuses a standalone server at open, and accepts mongos", async () => {
    const standalone = new FakeMongo({ isWritablePrimary: true, maxWireVersion: 21 });
    await expect(openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: standalone.client() })).rejects.toThrow(
      /standalone.*replica set|replica set.*standalone/s,
    );
    expect(standalone.indexes).toEqual([]);
    const mongos = new FakeMongo({ msg: "isdbgrid", isWritablePrimary: true });
    await (await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: mongos.client() })).close();
  });

  it("stores the documents described in mongo-updates.ts and keeps the owners document", async () => {
    const fake = new FakeMongo();
    const s = await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, now: () => 5000, client: fake.client() });
    await s.applyUpdates([
      upd(key("o", "c"), { set: [64], addLabels: ["z", "a"], settings: { pinned: true } }),
      upd(key("o", "d"), { settings: { ex: "" } }),
    ]);
    const docs = fake.docs("conversations").sort((a, b) => String(a.cid).localeCompare(String(b.cid)));
    expect(docs).toEqual([
      {
        owner: "o",
        type: 1,
        cid: "c",
        marks: Long.MIN_VALUE,
        labels: ["z", "a"],
        customMark: "",
        settings: { pinned: true },
        updateTime: new Date(5000),
        position: Long.fromInt(1),
        marked: true,
        version: Long.ONE,
      },
      {
        owner: "o",
        type: 1,
        cid: "d",
        marks: Long.ZERO,
        labels: [],
        customMark: "",
        settings: { ex: "" },
        updateTime: new Date(5000),
        position: Long.fromInt(2),
        marked: false,
        version: Long.ONE,
      },
    ]);
    expect(fake.docs("owners")).toEqual([{ _id: "o", position: Long.fromInt(2), marked: 1 }]);
    expect((await s.get(key("o", "c")))?.labels).toEqual(["a", "z"]);
    await s.close();
  });

  it("keeps the owners counter equal to the marked documents under concurrency", async () => {
    const fake = new FakeMongo();
    const s = await openMongoStore({ uri: "mongodb://fake", limits: { ...LIMITS, maxMarkedPerOwner: 5 }, client: fake.client() });
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        s.applyUpdates([upd(key("o", `c${i % 8}`), i % 3 === 0 ? { clear: [1] } : { set: [1 + (i % 5)] })]),
      ),
    );
    const marked = fake.docs("conversations").filter((d) => isMarked(docToRecord(d)));
    expect(fake.docs("conversations").every((d) => d.marked === isMarked(docToRecord(d)))).toBe(true);
    expect(fake.docs("owners")[0]?.marked).toBe(marked.length);
    expect(marked.length).toBeLessThanOrEqual(5);
    expect(fake.conflicts).toBeGreaterThan(0); // the transactions really raced
    await s.close();
  });

  it("fails only the affected owner's items with INTERNAL on a driver error, in request order", async () => {
    const fake = new FakeMongo();
    fake.beforeOp = (collection, op, filter) => {
      if (collection === "owners" && op === "findOne" && filter._id === "bad") {
        throw new MongoNetworkError("connection reset");
      }
    };
    const s = await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: fake.client() });
    const out = await s.applyUpdates([
      upd(key("good", "1"), { set: [1] }),
      upd(key("bad", "1"), { set: [1] }),
      upd(key("good", "2"), { set: [2] }),
      upd(key("bad", "2"), { clear: [2] }),
    ]);
    expect(out.map((o) => (o.ok ? o.record.key.conversationId : [o.failure.code, o.failure.message]))).toEqual([
      "1",
      [Code.Internal, "MongoDB: connection reset"],
      "2",
      [Code.Internal, "MongoDB: connection reset"],
    ]);
    expect(await s.get(key("bad", "1"))).toBeUndefined();
    await s.close();
  });

  it("retries a transaction that hit a duplicate key (racing first inserts)", async () => {
    const fake = new FakeMongo();
    let failures = 1;
    fake.beforeOp = (collection, op) => {
      if (collection === "conversations" && op === "bulkWrite" && failures-- > 0) {
        throw new MongoServerError({ message: "E11000 duplicate key error", code: 11000 });
      }
    };
    const s = await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: fake.client() });
    const [r] = await s.applyUpdates([upd(key("o", "1"), { set: [1] })]);
    expect(r?.ok && r.record.position).toBe(1n);
    await s.close();
  });

  it("splits an owner's updates into transactions of the configured size, positions continuing", async () => {
    const fake = new FakeMongo();
    const s = await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: fake.client(), maxUpdatesPerTransaction: 2 });
    const out = await s.applyUpdates(Array.from({ length: 5 }, (_, i) => upd(key("o", `${i}`), { set: [1] })));
    expect(out.map((o) => o.ok && o.record.position)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(fake.commits).toBe(3);
    await s.close();
  });

  it("returns an empty page for limit 0 (MongoDB would read limit(0) as no limit)", async () => {
    const s = await openMongoStore({ uri: "mongodb://fake", limits: LIMITS, client: new FakeMongo().client() });
    await s.applyUpdates([upd(key("o", "1"), { set: [1] })]);
    expect(await s.list({ owner: "o", filter: { marksAll: 0n, marksAny: 0n, marksNone: 0n, labelsAny: [] }, limit: 0 })).toEqual({ records: [] });
    await s.close();
  });
});
