/**
 * Fills the server's SQLite file with bulk owners quickly: every bulk owner holds the same 1,000
 * conversations (bench/workloads.ts bulkSpecs), so once the store adapter has written one owner
 * (the List owner, through the API), the others are that owner's rows as the store wrote them,
 * copied in SQL with the owner renamed and their own feed positions. Writing 9,000,000 rows through
 * the adapter took ~4 minutes of the 10-minute budget; the copy takes a small part of that. The file
 * is shared with the running server (WAL, busy timeout, IMMEDIATE transactions, the store-wide feed
 * counter advanced in the same transaction), exactly as the adapter would share it.
 */
import Database from "better-sqlite3";

const OWNERS_PER_TRANSACTION = 100;

export interface CopySpec {
  /** The SQLite file the server serves. */
  readonly dbPath: string;
  /** An owner whose `perOwner` conversations have positions 1..perOwner (written by the store, nothing deleted). */
  readonly template: string;
  readonly perOwner: number;
  /** Owner numbers [from, to) to create, named by `printfName` (an SQLite printf format, e.g. 'bulk-%05d'). */
  readonly from: number;
  readonly to: number;
  readonly printfName: string;
}

/** Copies the template owner's rows to every owner of [from, to); returns the rows written. */
export function copyOwners(spec: CopySpec): number {
  if (spec.to <= spec.from) return 0;
  const db = new Database(spec.dbPath, { fileMustExist: true });
  try {
    db.pragma("busy_timeout = 30000");
    if ((db.pragma("journal_mode", { simple: true }) as string) !== "wal") throw new Error(`${spec.dbPath} is not in WAL mode`);
    // The store's own durability setting for its writes.
    db.pragma("synchronous = NORMAL");
    const columns = (table: string) => db.prepare("SELECT name FROM pragma_table_info(?)").pluck().all(table) as string[];
    const convCols = columns("conversations");
    const ownerCols = columns("owners");
    for (const [table, cols, need] of [
      ["conversations", convCols, ["owner", "position", "seq"]],
      ["owners", ownerCols, ["owner", "position"]],
    ] as const) {
      const missing = need.filter((c) => !cols.includes(c));
      if (missing.length) throw new Error(`table ${table} has no column ${missing.join(", ")}: the store's schema changed, update bench/replicate.ts`);
    }
    const t = db
      .prepare("SELECT count(*) AS n, min(position) AS lo, max(position) AS hi FROM conversations WHERE owner = ?")
      .get(spec.template) as { n: number; lo: number; hi: number };
    const o = db.prepare("SELECT position FROM owners WHERE owner = ?").get(spec.template) as { position: number } | undefined;
    if (t.n !== spec.perOwner || t.lo !== 1 || t.hi !== spec.perOwner || o?.position !== spec.perOwner) {
      throw new Error(`template owner ${spec.template}: ${t.n} rows at positions ${t.lo}..${t.hi}, owner position ${o?.position}; expected 1..${spec.perOwner}`);
    }
    // The template in a temporary table, so the insert does not read the table it writes.
    db.exec("DROP TABLE IF EXISTS temp.tpl; DROP TABLE IF EXISTS temp.tpl_owner");
    db.prepare("CREATE TEMP TABLE tpl AS SELECT * FROM main.conversations WHERE owner = ?").run(spec.template);
    db.prepare("CREATE TEMP TABLE tpl_owner AS SELECT * FROM main.owners WHERE owner = ?").run(spec.template);
    const name = "printf(@fmt, n.k)";
    const owners = "WITH RECURSIVE n(k) AS (SELECT @first UNION ALL SELECT k + 1 FROM n WHERE k < @last)";
    // seq: after the feed's last one, owner by owner, in position order (commit order of a load that wrote owner after owner).
    const convSelect = convCols.map((c) => (c === "owner" ? name : c === "seq" ? "@base + (n.k - @first) * @per + t.position" : `t.${c}`));
    const insertConversations = db.prepare(
      `INSERT INTO main.conversations (${convCols.join(", ")}) ${owners}
       SELECT ${convSelect.join(", ")} FROM n CROSS JOIN temp.tpl AS t ORDER BY n.k, t.type, t.conv_id`,
    );
    const insertOwners = db.prepare(
      `INSERT INTO main.owners (${ownerCols.join(", ")}) ${owners}
       SELECT ${ownerCols.map((c) => (c === "owner" ? name : `t.${c}`)).join(", ")} FROM n CROSS JOIN temp.tpl_owner AS t`,
    );
    const feedSeq = db.prepare("SELECT seq FROM main.feed WHERE id = 1").pluck().safeIntegers(true);
    const setFeedSeq = db.prepare("UPDATE main.feed SET seq = ? WHERE id = 1");
    const chunk = db.transaction((first: number, last: number) => {
      const base = feedSeq.get() as bigint;
      const params = { fmt: spec.printfName, first, last, base, per: spec.perOwner };
      const rows = insertConversations.run(params).changes;
      insertOwners.run({ fmt: spec.printfName, first, last });
      setFeedSeq.run(base + BigInt((last - first + 1) * spec.perOwner));
      return rows;
    });
    let written = 0;
    for (let first = spec.from; first < spec.to; first += OWNERS_PER_TRANSACTION) {
      const last = Math.min(spec.to, first + OWNERS_PER_TRANSACTION) - 1;
      written += chunk.immediate(first, last);
    }
    db.pragma("wal_checkpoint(PASSIVE)");
    return written;
  } finally {
    db.close();
  }
}
