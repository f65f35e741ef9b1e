/**
 * The shared store contract against MongoDB. Runs only when MONGODB_URI points at a replica set or a
 * sharded cluster (transactions), e.g. a single-node replica set:
 *   mongod --replSet rs0 --dbpath /tmp/rs0 & mongosh --eval 'rs.initiate()'
 *   MONGODB_URI='mongodb://127.0.0.1:27017/?replicaSet=rs0' npx vitest run test/store/mongo.test.ts
 * Every open() gets its own database, dropped when the store is closed.
 */
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { describe } from "vitest";
import { openMongoStore } from "../../src/store/mongo-store.js";
import type { MarkStore } from "../../src/store/store.js";
import { describeStoreContract } from "./contract.js";

const uri = process.env.MONGODB_URI;
if (!uri) console.log("MongoDB store contract suite not run: MONGODB_URI is not set");

describe.runIf(uri)("mongodb store", () => {
  describeStoreContract("mongodb", async ({ limits, now, tombstoneRetentionMs }) => {
    const dbName = `convmark_test_${process.pid}_${randomBytes(6).toString("hex")}`;
    const client = await new MongoClient(uri!).connect();
    let store: MarkStore;
    try {
      store = await openMongoStore({ uri: uri!, dbName, limits, now, client, ...(tombstoneRetentionMs !== undefined ? { tombstoneRetentionMs } : {}) });
    } catch (e) {
      await client.close();
      throw e;
    }
    return {
      applyUpdates: (u) => store.applyUpdates(u),
      restoreConversations: (r) => store.restoreConversations(r),
      deleteConversations: (k) => store.deleteConversations(k),
      changes: (q) => store.changes(q),
      head: (o) => store.head(o),
      subscribe: (l) => store.subscribe(l),
      purgeTombstones: () => store.purgeTombstones(),
      get: (k) => store.get(k),
      batchGet: (ks) => store.batchGet(ks),
      list: (q) => store.list(q),
      close: async () => {
        await store.close();
        try {
          await client.db(dbName).dropDatabase();
        } finally {
          await client.close();
        }
      },
    };
  }, { storeWideOrder: false });
});
