import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import { openSqliteStore } from "../src/store/sqlite-store.js";
import { maskOf } from "../src/domain/marks.js";
const path = "/tmp/mb/list.db";
const fresh = !existsSync(path);
const store = openSqliteStore({ path, limits: { maxMarkedPerOwner: 1e9, maxLabelsPerConversation: 32 } });
if (fresh) {
  const t = Date.now();
  for (let o = 0; o < 1000; o++) {
    const ups = Array.from({ length: 1000 }, (_, i) => ({ key: { owner: `bulk-${String(o).padStart(4, "0")}`, type: 1 as const, conversationId: `c${i}` }, setMask: maskOf([1 + (i % 7), ...(i % 10 === 0 ? [5] : [])]), clearMask: 0n, addLabels: [], removeLabels: [], settings: {} }));
    await store.applyUpdates(ups);
  }
  console.log("loaded in", Date.now() - t, "ms");
}
const filter = { marksAll: 0n, marksAny: maskOf([5]), marksNone: 0n, labelsAny: [] };
for (let i = 0; i < 50; i++) await store.list({ owner: "bulk-0000", filter, limit: 100 });
const t = performance.now();
const N = 300; const lat: number[] = [];
for (let i = 0; i < N; i++) { const s = performance.now(); await store.list({ owner: "bulk-0000", filter, limit: 100 }); lat.push(performance.now() - s); }
lat.sort((a, b) => a - b);
console.log("list avg", ((performance.now() - t) / N).toFixed(3), "ms p99", lat[Math.floor(N * 0.99)]!.toFixed(3));
const db = new Database(path, { readonly: true });
console.log(db.prepare("EXPLAIN QUERY PLAN SELECT * FROM conversations WHERE owner = ? AND (marks & ?) != 0 ORDER BY position DESC LIMIT ?").all("bulk-0000", 16, 101));
