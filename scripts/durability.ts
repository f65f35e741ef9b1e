/**
 * kill -9 under load, repeatably: `npx tsx scripts/durability.ts [--kills 5] [--writers 16] [--seconds-between 2]`
 *
 * Starts the real server (src/main.ts, embedded SQLite in a temporary directory) as a child process,
 * writes with concurrent Connect clients (each update sets one new conversation of its own), sends
 * SIGKILL at a random moment, restarts on the same data directory and checks that every write the
 * server acknowledged is there. Prints one JSON line; exits 1 if an acknowledged write is missing.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { kills: { type: "string", default: "5" }, writers: { type: "string", default: "16" }, "seconds-between": { type: "string", default: "2" }, port: { type: "string", default: "18931" } } });
const dataDir = mkdtempSync(join(tmpdir(), "convmark-durability-"));
const port = Number(values.port);
const base = `http://127.0.0.1:${port}`;

async function start(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", CONVMARK_DATA_DIR: dataDir, LOG_LEVEL: "silent", CONVMARK_MAX_MARKED_PER_OWNER: "10000000" },
    stdio: "ignore",
  });
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      if (r.ok) return child;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("server did not start");
}

const acknowledged: string[] = [];
let seq = 0;
async function writer(stop: () => boolean): Promise<void> {
  while (!stop()) {
    const n = seq++;
    const id = `w${n}`;
    const owner = `owner${n % 32}`;
    try {
      const r = await fetch(`${base}/convmark.v1.MarkService/UpdateConversations`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ updates: [{ key: { ownerUserId: owner, type: "CONVERSATION_TYPE_DIRECT", conversationId: id }, setMarks: [7] }] }),
      });
      const j = (await r.json()) as { results?: { status?: { code?: number } }[] };
      if (r.ok && (j.results?.[0]?.status?.code ?? 0) === 0) acknowledged.push(`${owner}|${id}`);
    } catch {
      return; // killed
    }
  }
}

let child = await start();
for (let k = 0; k < Number(values.kills); k++) {
  let stopped = false;
  const writers = Array.from({ length: Number(values.writers) }, () => writer(() => stopped));
  await new Promise((r) => setTimeout(r, (0.5 + Math.random()) * Number(values["seconds-between"]) * 1000));
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  stopped = true;
  await Promise.all(writers);
  await exited;
  child = await start();
}
// Verify every acknowledged write.
let missing = 0;
for (let i = 0; i < acknowledged.length; i += 500) {
  const keys = acknowledged.slice(i, i + 500).map((k) => {
    const [owner, id] = k.split("|");
    return { ownerUserId: owner, type: "CONVERSATION_TYPE_DIRECT", conversationId: id };
  });
  for (const key of keys) {
    const r = await fetch(`${base}/convmark.v1.MarkService/GetConversation`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key }) });
    const j = (await r.json()) as { conversation?: { marks?: number[] } };
    if (!j.conversation?.marks?.includes(7)) missing++;
  }
}
const exited = new Promise((r) => child.once("exit", r));
child.kill("SIGTERM");
await exited;
rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify({ kills: Number(values.kills), acknowledged: acknowledged.length, missing }));
process.exit(missing === 0 ? 0 : 1);
