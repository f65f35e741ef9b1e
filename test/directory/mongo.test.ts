/**
 * The shared directory contract against MongoDB. Runs only when MONGODB_URI is set (a standalone
 * mongod is enough: the directory needs no transactions), e.g.
 *   MONGODB_URI='mongodb://127.0.0.1:27017' npx vitest run test/directory/mongo.test.ts
 * Every open() gets its own database, dropped when the store is closed.
 */
import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { describe } from "vitest";
import { openMongoDirectory } from "../../src/directory/mongo-directory.js";
import type { DirectoryStore } from "../../src/directory/store.js";
import { describeDirectoryContract } from "./contract.js";

const uri = process.env.MONGODB_URI;
if (!uri) console.log("MongoDB directory contract suite not run: MONGODB_URI is not set");

describe.runIf(uri)("mongodb directory", () => {
  describeDirectoryContract("mongodb", async ({ now }) => {
    const dbName = `convmark_dir_test_${process.pid}_${randomBytes(6).toString("hex")}`;
    const client = await new MongoClient(uri!).connect();
    let store: DirectoryStore;
    try {
      store = await openMongoDirectory({ client, dbName, now });
    } catch (e) {
      await client.close();
      throw e;
    }
    let closed = false;
    return new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== "close") return Reflect.get(target, prop, receiver);
        return async () => {
          await target.close();
          if (closed) return;
          closed = true;
          try {
            await client.db(dbName).dropDatabase();
          } finally {
            await client.close();
          }
        };
      },
    });
  });
});
