/**
 * kill -9 under load, repeatably: `npx tsx scripts/durability.ts [--kills 5] [--writers 16] [--seconds-between 2]`
 *
 * Starts the real server (src/main.ts, embedded SQLite in a temporary directory) as a child process,
 * writes with concurrent Connect clients (each update sets one new conversation of its own), sends
 * SIGKILL at a random moment, restarts on the same data directory and checks that every write the
 * server acknowledged is there. Prints one JSON line; exits 1 if an acknowledged write is missing.
 * Every call has a timeout (--call-timeout-ms); the port is a free one unless --port is given.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort, startServerProcess, type ServerProcess } from "../test/support/server-process.js";

const { values } = parseArgs({
  options: {
    kills: { type: "string", default: "5" },
    writers: { type: "string", default: "16" },
    "seconds-between": { type: "string", default: "2" },
    // Default: a free port picked at start (a fixed one could reach a server left by another run).
    port: { type: "string" },
    "call-timeout-ms": { type: "string", default: "30000" },
  },
});
const dataDir = mkdtempSync(join(tmpdir(), "convmark-durability-"));
const port = values.port ? Number(values.port) : await freePort();
const base = `http://127.0.0.1:${port}`;
const timeout = () => AbortSignal.timeout(Number(values["call-timeout-ms"]));

// Only the variables it is given (a developer's MONGODB_URI or CONVMARK_* must not leak in); the
// same data directory and port on every restart.
const start = (): Promise<ServerProcess> => startServerProcess({ LOG_LEVEL: "silent", CONVMARK_MAX_MARKED_PER_OWNER: "10000000" }, { dataDir, port });

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
        signal: timeout(),
      });
      const j = (await r.json()) as { results?: { status?: { code?: number } }[] };
      if (r.ok && (j.results?.[0]?.status?.code ?? 0) === 0) acknowledged.push(`${owner}|${id}`);
    } catch {
      return; // killed
    }
  }
}

let server = await start();
for (let k = 0; k < Number(values.kills); k++) {
  let stopped = false;
  const writers = Array.from({ length: Number(values.writers) }, () => writer(() => stopped));
  await new Promise((r) => setTimeout(r, (0.5 + Math.random()) * Number(values["seconds-between"]) * 1000));
  const killed = server.stop({ signal: "SIGKILL", keepData: true });
  stopped = true;
  await Promise.all([killed, ...writers]);
  server = await start();
}
// Verify every acknowledged write, 16 reads at a time.
let missing = 0;
let nextRead = 0;
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (nextRead < acknowledged.length) {
      const [owner, id] = acknowledged[nextRead++]!.split("|");
      const key = { ownerUserId: owner, type: "CONVERSATION_TYPE_DIRECT", conversationId: id };
      const r = await fetch(`${base}/convmark.v1.MarkService/GetConversation`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key }), signal: timeout() });
      const j = (await r.json()) as { conversation?: { marks?: number[] } };
      if (!j.conversation?.marks?.includes(7)) missing++;
    }
  }),
);
await server.stop();
rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify({ kills: Number(values.kills), acknowledged: acknowledged.length, missing }));
process.exit(missing === 0 ? 0 : 1);
