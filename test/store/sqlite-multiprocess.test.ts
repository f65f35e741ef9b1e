/** Several OS processes share one SQLite file: the cap and every bit must survive their interleaving. */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { ConvType } from "../../src/domain/conversation.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "convmark-mp-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("holds the per-owner cap and loses no bit across 4 processes", async () => {
  const path = join(dir, "shared.db");
  const cap = 101; // 100 own conversations + the shared "hot" one
  // Create the schema first so the children do not race on CREATE TABLE.
  await openSqliteStore({ path, limits: { maxMarkedPerOwner: cap, maxLabelsPerConversation: 32 } }).close();
  const outs = await Promise.all(
    [0, 1, 2, 3].map((w) => run(process.execPath, ["--import", "tsx", "test/store/fixtures/hammer.ts", path, String(w), String(cap)])),
  );
  const succeeded = outs.reduce((n, o) => n + (JSON.parse(o.stdout) as { ok: number }).ok, 0);
  expect(succeeded).toBe(100);
  const store = openSqliteStore({ path, limits: { maxMarkedPerOwner: cap, maxLabelsPerConversation: 32 } });
  const hot = await store.get({ owner: "shared-owner", type: ConvType.Group, conversationId: "hot" });
  expect(hot?.marks).toBe((1n << 64n) - 1n); // marks 1..64, 16 per worker
  const page = await store.list({ owner: "shared-owner", filter: { marksAll: 0n, marksAny: 0n, marksNone: 0n, labelsAny: [] }, limit: 1000 });
  expect(page.records).toHaveLength(cap);
  await store.close();
});
