/** The ceilings' process (bench/ceilings.ts) and the raw better-sqlite3 upsert ceiling. */
import { spawn } from "node:child_process";
import Database from "better-sqlite3";
import { maskOf } from "../src/domain/marks.js";
import { procCpuSeconds } from "./server.js";
import type { UpdateSpec } from "./workloads.js";

export interface CeilingServer {
  readonly pid: number;
  readonly echoPort: number;
  readonly connectPort: number;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export async function startCeilings(repoRoot: string): Promise<CeilingServer> {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/ceilings.ts"], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
  const ports = await new Promise<{ echo: number; connect: number }>((resolve, reject) => {
    let buf = "";
    child.once("exit", (code) => reject(new Error(`the ceilings process exited (code ${code}) before listening`)));
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as { echo: number; connect: number });
    });
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const pid = child.pid!;
  return {
    pid,
    echoPort: ports.echo,
    connectPort: ports.connect,
    cpuSeconds: () => procCpuSeconds(pid),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * The storage's limit: plain better-sqlite3 upserts of the bench's rows (the store's table, its
 * pragmas, one prepared INSERT .. ON CONFLICT DO UPDATE per row), one transaction per batch of 100
 * as UpdateConversations(100) sends them. No caps, no versions read back, no results built.
 */
export function openRawSqlite(path: string): Database.Database {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`CREATE TABLE IF NOT EXISTS conversations (
    owner TEXT NOT NULL, type INTEGER NOT NULL, conv_id TEXT NOT NULL, marks INTEGER NOT NULL,
    custom_mark TEXT NOT NULL, labels TEXT NOT NULL, version INTEGER NOT NULL, update_time INTEGER NOT NULL,
    position INTEGER NOT NULL, marked INTEGER NOT NULL, PRIMARY KEY (owner, type, conv_id)) WITHOUT ROWID;
    CREATE UNIQUE INDEX IF NOT EXISTS conversations_owner_position_marks ON conversations (owner, position, marks);`);
  return db;
}

export function rawUpserter(db: Database.Database): (specs: readonly UpdateSpec[]) => number {
  const upsert = db.prepare(`INSERT INTO conversations (owner, type, conv_id, marks, custom_mark, labels, version, update_time, position, marked)
    VALUES (?, ?, ?, ?, '', '[]', 1, ?, ?, 1)
    ON CONFLICT (owner, type, conv_id) DO UPDATE SET marks = (marks | excluded.marks) & ~?, version = version + 1,
      update_time = excluded.update_time, position = excluded.position, marked = 1`);
  let position = 0;
  const batch = db.transaction((specs: readonly UpdateSpec[]) => {
    const now = Date.now();
    for (const u of specs) {
      upsert.run(u.owner, u.group ? 2 : 1, u.conversationId, BigInt.asIntN(64, maskOf(u.setMarks)), now, ++position, BigInt.asIntN(64, maskOf(u.clearMarks)));
    }
    return specs.length;
  });
  return (specs) => batch(specs);
}
