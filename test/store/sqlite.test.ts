import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { describeStoreContract, key, upd } from "./contract.js";

const dir = mkdtempSync(join(tmpdir(), "convmark-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

describeStoreContract("sqlite (file, WAL)", async ({ limits, now }) => openSqliteStore({ path: join(dir, `t${n++}.db`), limits, now, chunkSize: 2 }));

describe("sqlite store", () => {
  it("survives a reopen of the same file", async () => {
    const path = join(dir, "reopen.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const a = openSqliteStore({ path, limits });
    await a.applyUpdates([upd(key("u", "c"), { set: [1, 64], customMark: "m", addLabels: ["x"], settings: { receiveOption: 2 } })]);
    await a.close();
    const b = openSqliteStore({ path, limits });
    const r = await b.get(key("u", "c"));
    expect(r?.marks).toBe((1n << 63n) | 1n);
    expect(r?.customMark).toBe("m");
    expect(r?.labels).toEqual(["x"]);
    expect(r?.settings).toEqual({ receiveOption: 2 });
    // The stream continues where it stopped.
    const [next] = await b.applyUpdates([upd(key("u", "d"), { set: [2] })]);
    expect(next?.ok && next.record.position).toBe(2n);
    await b.close();
  });

  it("refuses to work after close", async () => {
    const s = openSqliteStore({ path: join(dir, "closed.db"), limits: { maxMarkedPerOwner: 1, maxLabelsPerConversation: 1 } });
    await s.close();
    await expect(s.get(key("a", "b"))).rejects.toThrow(/closed/);
  });
});
