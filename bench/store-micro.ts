/**
 * `npx tsx bench/store-micro.ts [--seconds=N] [--rounds=N] [--base=DIR] [--stored=N]`: the SQLite
 * store's hot paths in this process, next to raw better-sqlite3 upserts of the same rows:
 *
 * - `apply100`: applyUpdates of UpdateConversations(100)'s batches (one owner's 100 conversations,
 *   200 owners in turn, every update a real write), one call at a time, as the bench's storage100 row;
 * - `stmts100`: the store's own SQL for those batches without its JavaScript (storeStatements below);
 *   `stmts100_rowid`, `stmts100_noseq` and `stmts100_rowid_noseq` (only with --only): the same with
 *   each UPDATE by rowid instead of by key, without the conversations_seq index, and both, the two
 *   schema changes left to the write path (docs/performance.md, "Session 13"); `stmts100_log` and
 *   `stmts100_rowid_log`: without the index, each change appended to a feed log (seq, rowid)
 *   instead, unpruned (what the index's replacement would cost at least);
 * - `raw100`: the raw upsert ceiling (bench/ceiling-server.ts) on the same batch shape;
 * - `changes1000`: store.changes of one owner's 1,000 changes (what SyncConversations reads), with
 *   `--stored` conversations in the file (default 100,000);
 * - `list100`: store.list of the bench's List query (marks_any [5], page size 100) on that owner.
 *
 * CPU per operation is this process's CPU (process.cpuUsage) over the slice. With --base=DIR (a copy
 * of the repository at another commit, with its node_modules), DIR's store runs in alternation with
 * this one on files of its own, so a before/after pair sees the same machine load.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";
import type { MarkStore, StoreLimits } from "../src/store/store.js";
import Database from "better-sqlite3";
import { maskOf } from "../src/domain/marks.js";
import { openRawSqlite, rawUpserter } from "./ceiling-server.js";
import { flags } from "./load.js";
import { bulkSpecs, OwnerBatchPool, toValidUpdates } from "./workloads.js";

type OpenStore = (opts: { path: string; limits: StoreLimits }) => MarkStore;

const args = flags(process.argv.slice(2));
const seconds = Number(args.get("seconds") ?? 2);
const rounds = Number(args.get("rounds") ?? 3);
const stored = Number(args.get("stored") ?? 100_000);
const base = args.get("base");
const limits: StoreLimits = { maxMarkedPerOwner: 10_000_000, maxLabelsPerConversation: 32 };
const OWNER = "bulk-00000";
const MARK5 = 1n << 4n;

interface Figures {
  ops: number;
  units: number;
  cpuUs: number;
  wallMs: number;
}
const add = (a: Figures | undefined, b: Figures): Figures =>
  a ? { ops: a.ops + b.ops, units: a.units + b.units, cpuUs: a.cpuUs + b.cpuUs, wallMs: a.wallMs + b.wallMs } : b;

async function slice(run: () => Promise<number> | number): Promise<Figures> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let ops = 0;
  let units = 0;
  while (performance.now() < deadline) {
    units += await run();
    ops++;
  }
  const cpu = process.cpuUsage(cpu0);
  return { ops, units, cpuUs: cpu.user + cpu.system, wallMs: performance.now() - t0 };
}

async function fill(store: MarkStore): Promise<void> {
  // The List/Sync owner first (1,000 conversations), then other bulk owners up to `stored`.
  for (let i = 0; i < stored; i += 20_000) {
    const specs = [];
    for (let j = i; j < Math.min(stored, i + 20_000); j += 1000) specs.push(...bulkSpecs(`bulk-${String(j / 1000).padStart(5, "0")}`, 0, 1000));
    const out = await store.applyUpdates(toValidUpdates(specs));
    if (out.some((o) => !o.ok)) throw new Error("fill failed");
  }
}

interface Subject {
  readonly name: string;
  readonly rows: Record<string, () => Promise<number> | number>;
  close(): Promise<void>;
}

async function subject(name: string, open: OpenStore, dir: string): Promise<Subject> {
  const writes = open({ path: join(dir, `${name}-apply.db`), limits });
  const reads = open({ path: join(dir, `${name}-read.db`), limits });
  await fill(reads);
  const pool = new OwnerBatchPool("s100", 200, 100);
  return {
    name,
    rows: {
      apply100: async () => {
        const out = await writes.applyUpdates(toValidUpdates(pool.next()));
        if (!out.every((o) => o.ok && o.changed)) throw new Error(`${name}: an update was not applied`);
        return out.length;
      },
      changes1000: async () => {
        const page = await reads.changes({ owner: OWNER, after: 0n, limit: 1000 });
        if (page.changes.length !== 1000 || page.hasMore) throw new Error(`${name}: ${page.changes.length} changes`);
        return page.changes.length;
      },
      list100: async () => {
        const page = await reads.list({ owner: OWNER, filter: { marksAll: 0n, marksAny: MARK5, marksNone: 0n, labelsAny: [] }, limit: 100 });
        if (page.records.length !== 100) throw new Error(`${name}: ${page.records.length} listed`);
        return page.records.length;
      },
    },
    async close() {
      await writes.close();
      await reads.close();
    },
  };
}

/**
 * `stmts100`: the SQL the store runs for one UpdateConversations(100) batch of marks-only changes,
 * without its JavaScript (planner, records, outcomes): in one IMMEDIATE transaction, the current
 * rows read with one IN list, one marks-only UPDATE per row (the store's statement, its indexes),
 * the owner's row and the feed counter. The store's file and schema (made by openSqliteStore).
 */
async function storeStatements(path: string, open: OpenStore, variant: { byRowid?: boolean; noSeqIndex?: boolean; feedLog?: boolean } = {}): Promise<{ run: () => number; close(): void }> {
  const pool = new OwnerBatchPool("t100", 200, 100);
  const store = open({ path, limits });
  for (let i = 0; i < 200; i++) await store.applyUpdates(toValidUpdates(pool.next()));
  await store.close();
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  if (variant.noSeqIndex || variant.feedLog) db.exec("DROP INDEX conversations_seq");
  // The feed's replacement for the index: an append-only log of (seq, the row's rowid), unpruned.
  if (variant.feedLog) db.exec("CREATE TABLE feed_log (seq INTEGER PRIMARY KEY, conversation INTEGER NOT NULL)");
  const appendLog = variant.feedLog ? db.prepare("INSERT INTO feed_log (seq, conversation) VALUES (?, ?)") : undefined;
  const STATE = `marks, custom_mark, labels, pinned, receive_option, private_chat, burn_duration, attached_info, ex, version, update_time, position, vendor_conv_id${variant.byRowid || variant.feedLog ? ", rowid" : ""}`;
  // IN lists give rows in key order: the batch's ids are in key order too (c0000 .. c0099).
  const read = db.prepare<unknown[], unknown[]>(`SELECT conv_id, ${STATE} FROM conversations WHERE owner = ? AND type = ? AND conv_id IN (${Array.from({ length: 128 }, () => "?").join(", ")})`).safeIntegers(true).raw(true);
  const set = "UPDATE conversations SET marks = ?, version = ?, update_time = ?, position = ?, marked = ?, seq = ?";
  const update = db.prepare(variant.byRowid ? `${set} WHERE rowid = ?` : `${set} WHERE owner = ? AND type = ? AND conv_id = ?`);
  const owner = db.prepare<[string], { position: bigint }>("SELECT position, marked_count FROM owners WHERE owner = ?").safeIntegers(true);
  const upsertOwner = db.prepare("INSERT INTO owners (owner, position, marked_count) VALUES (?, ?, ?) ON CONFLICT (owner) DO UPDATE SET position = excluded.position, marked_count = excluded.marked_count");
  const feed = db.prepare<[], { seq: bigint }>("SELECT seq FROM feed WHERE id = 1").safeIntegers(true);
  const setFeed = db.prepare("UPDATE feed SET seq = ? WHERE id = 1");
  const batch = db.transaction((specs: ReturnType<OwnerBatchPool["next"]>) => {
    const o = specs[0]!.owner;
    const ids = specs.map((u) => u.conversationId);
    const rows = read.all(o, 1, ...ids, ...Array.from({ length: 128 - ids.length }, () => ids[ids.length - 1]));
    if (rows.length !== specs.length) throw new Error(`stmts100: ${rows.length} rows read`);
    let position = owner.get(o)!.position;
    let seq = feed.get()!.seq;
    const now = Date.now();
    for (const [i, u] of specs.entries()) {
      const r = rows[i]!;
      const marks = ((r[1] as bigint) | BigInt.asIntN(64, maskOf(u.setMarks))) & ~BigInt.asIntN(64, maskOf(u.clearMarks));
      if (variant.byRowid) update.run(marks, (r[10] as bigint) + 1n, now, ++position, 1, ++seq, r[14]);
      else update.run(marks, (r[10] as bigint) + 1n, now, ++position, 1, ++seq, o, 1, u.conversationId);
      appendLog?.run(seq, r[14]);
    }
    upsertOwner.run(o, position, specs.length);
    setFeed.run(seq);
    return specs.length;
  });
  return { run: () => batch.immediate(pool.next()), close: () => db.close() };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "convmark-store-micro-"));
  try {
    const subjects: Subject[] = [];
    const here = (await import("../src/store/sqlite-store.js")).openSqliteStore as OpenStore;
    if (base) {
      const mod = (await import(pathToFileURL(resolve(base, "src/store/sqlite-store.ts")).href)) as { openSqliteStore: OpenStore };
      subjects.push(await subject("base", mod.openSqliteStore, dir));
    }
    subjects.push(await subject(base ? "this" : "store", here, dir));
    const stmts = await storeStatements(join(dir, "stmts.db"), here);
    const rowNames = (args.get("only") ?? "apply100,stmts100,raw100,changes1000,list100").split(",");
    const variants = new Map<string, { run: () => number; close(): void }>();
    for (const [row, variant] of [
      ["stmts100_rowid", { byRowid: true }],
      ["stmts100_noseq", { noSeqIndex: true }],
      ["stmts100_rowid_noseq", { byRowid: true, noSeqIndex: true }],
      ["stmts100_log", { feedLog: true }],
      ["stmts100_rowid_log", { byRowid: true, feedLog: true }],
    ] as const) {
      if (rowNames.includes(row)) variants.set(row, await storeStatements(join(dir, `${row}.db`), here, variant));
    }
    const rawDb = openRawSqlite(join(dir, "raw.db"));
    const raw = rawUpserter(rawDb);
    const rawPool = new OwnerBatchPool("r100", 200, 100);
    const rawRow = () => raw(rawPool.next());

    const totals = new Map<string, Figures>();
    const runRow = async (label: string, fn: () => Promise<number> | number, s: number) => {
      const f = await slice(fn);
      if (s >= 0) totals.set(label, add(totals.get(label), f));
    };
    // Warm-up, then rounds with every subject's row and the raw ceiling alternating.
    for (let r = -1; r < rounds; r++) {
      for (const row of rowNames) {
        if (row === "raw100") await runRow("raw100", rawRow, r);
        else if (row === "stmts100") await runRow("stmts100", stmts.run, r);
        else if (variants.has(row)) await runRow(row, variants.get(row)!.run, r);
        else for (const s of subjects) await runRow(`${row} ${s.name}`, s.rows[row]!, r);
      }
    }
    console.log(`store-micro ${new Date().toISOString()} load ${(await import("node:os")).loadavg().map((x) => x.toFixed(2)).join(" ")}; ${rounds} x ${seconds} s per row, ${stored} stored for the read rows`);
    console.log("row                  ops/s       units/s   CPU µs/unit   CPU ms/op");
    for (const [label, f] of totals) {
      const s = f.wallMs / 1000;
      console.log(
        `${label.padEnd(18)} ${(f.ops / s).toFixed(0).padStart(8)} ${(f.units / s).toFixed(0).padStart(12)} ${(f.cpuUs / f.units).toFixed(2).padStart(12)} ${(f.cpuUs / f.ops / 1000).toFixed(3).padStart(11)}`,
      );
    }
    for (const s of subjects) await s.close();
    rawDb.close();
    stmts.close();
    for (const v of variants.values()) v.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
