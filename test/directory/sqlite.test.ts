import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { ConvType } from "../../src/domain/conversation.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { openSqliteDirectory } from "../../src/directory/sqlite-directory.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { describeDirectoryContract } from "./contract.js";

const dir = mkdtempSync(join(tmpdir(), "convmark-directory-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

describeDirectoryContract("sqlite (file, WAL)", async ({ now }) => openSqliteDirectory({ path: join(dir, `d${n++}.db`), now }));
describeDirectoryContract("sqlite (:memory:)", async ({ now }) => openSqliteDirectory({ path: ":memory:", now }));

describe("sqlite directory", () => {
  it("shares the marks store's file without touching its tables or schema version", async () => {
    const path = join(dir, "shared.db");
    const limits = { maxMarkedPerOwner: DEFAULT_LIMITS.maxMarkedPerOwner, maxLabelsPerConversation: DEFAULT_LIMITS.maxLabelsPerConversation };
    const marks = openSqliteStore({ path, limits });
    const versionOf = () => {
      const d = new Database(path, { readonly: true });
      const v = d.pragma("user_version", { simple: true });
      d.close();
      return v;
    };
    const storeVersion = versionOf();
    expect(storeVersion).toBeGreaterThan(0);
    const directory = openSqliteDirectory({ path });
    await directory.registerUsers(["alice"]);
    await directory.createGroup("g", ["alice"]);
    const key = { owner: "alice", type: ConvType.Group, conversationId: "g" } as const;
    await marks.applyUpdates([{ key, setMask: 1n, clearMask: 0n, addLabels: [], removeLabels: [], settings: {} }]);
    await directory.close();
    await marks.close();

    const db = new Database(path, { readonly: true });
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    const userVersion = db.pragma("user_version", { simple: true });
    const journal = db.pragma("journal_mode", { simple: true });
    db.close();
    expect(tables).toEqual(["conversations", "directory_group_members", "directory_groups", "directory_users", "feed", "owners", "tombstones"]);
    // The version is the marks store's: the directory neither sets nor bumps it.
    expect(userVersion).toBe(storeVersion);
    expect(journal).toBe("wal");

    // Both reopen in either order and keep their data.
    const directory2 = openSqliteDirectory({ path });
    const marks2 = openSqliteStore({ path, limits });
    expect((await directory2.getUsers(["alice"]))[0]?.userId).toBe("alice");
    expect(await directory2.getMembers("g")).toEqual(["alice"]);
    expect((await marks2.get(key))?.marks).toBe(1n);
    await marks2.close();
    await directory2.close();
  });

  it("sees writes of another connection to the same file", async () => {
    const path = join(dir, "two.db");
    const a = openSqliteDirectory({ path });
    const b = openSqliteDirectory({ path });
    await a.registerUsers(["u"]);
    await a.createGroup("g", ["u"]);
    expect(await b.registerUsers(["u"])).toEqual([false]);
    expect(await b.createGroup("g", [])).toEqual({ ok: false, reason: "exists" });
    await b.dismissGroup("g");
    expect((await a.getGroups(["g"]))[0]?.dismissed).toBe(true);
    await a.close();
    await b.close();
  });
});
