/**
 * The real server entry point in its own OS process on 127.0.0.1, for the fuzz suite and the scripts
 * that need a separate process (signals, its own core, its own memory): src/main.ts through tsx, or
 * with `built` the tsc output as `npm start` runs it. Embedded SQLite in a temporary directory unless
 * dataDir is given.
 *
 * The child also loads a small probe (a data: module, so nothing is added to the server): on the IPC
 * message "convmark:memory" it runs gc() when started with --expose-gc and answers with
 * process.memoryUsage() and v8.getHeapStatistics(); on "convmark:heap-snapshot" it writes one.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const PROBE = `
import v8 from "node:v8";
// Not in a cluster worker (it inherits these flags; the primary sets CONVMARK_CLUSTER_STATE_DIR):
// its IPC channel to the primary must keep it alive.
if (!process.env.CONVMARK_CLUSTER_STATE_DIR) process.channel?.unref();
process.on("message", (m) => {
  if (m?.type === "convmark:memory") {
    for (let i = 0; i < (m.gc ?? 0) && globalThis.gc; i++) globalThis.gc();
    process.send({ type: "convmark:memory", usage: process.memoryUsage(), heap: v8.getHeapStatistics(), spaces: v8.getHeapSpaceStatistics(), gc: Boolean(globalThis.gc) });
  } else if (m?.type === "convmark:heap-snapshot") {
    process.send({ type: "convmark:heap-snapshot", file: v8.writeHeapSnapshot(m.file) });
  }
});
`;

export interface MemoryReading {
  readonly usage: NodeJS.MemoryUsage;
  readonly heap: ReturnType<typeof import("node:v8").getHeapStatistics>;
  readonly spaces: ReturnType<typeof import("node:v8").getHeapSpaceStatistics>;
  /** Whether gc() was available (the child runs with --expose-gc). */
  readonly gc: boolean;
}

export interface ServerProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Memory of the server process, after `gcs` full collections (needs exposeGc). */
  memory(gcs?: number): Promise<MemoryReading>;
  /** Writes a V8 heap snapshot of the server process; resolves with its file name. */
  heapSnapshot(file?: string): Promise<string>;
  /** CPU time (user + system) the server process and its cluster workers have used so far, in ms (/proc). */
  cpuMs(): number;
  /** RSS from /proc/<pid>/status, in bytes. */
  rss(): number;
  /** Sends the signal (default SIGTERM) and waits for the exit; the data dir is removed unless keepData. */
  stop(opts?: { signal?: NodeJS.Signals; keepData?: boolean }): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export { freePort };

/** The server as `npm start` runs it (`dist/src/cli/main.js serve`): tsc's output of src/ and gen/ (tsconfig.build.json). */
const BUILT_CLI = join(ROOT, "dist/src/cli/main.js");

/** The newest modification time among the files under `dir` (recursively), in ms. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs);
  return t;
}

/**
 * Builds the server (tsc -p tsconfig.build.json, as `npm run build` does; about 10 s) unless dist/
 * is newer than every file of src/, gen/ and the TypeScript configuration, so that a test of the
 * built server never runs stale code.
 * Returns how long the build took (0: none was needed).
 */
export function ensureServerBuilt(): number {
  const sources = Math.max(newest(join(ROOT, "src")), newest(join(ROOT, "gen")), ...["tsconfig.json", "tsconfig.build.json", "package-lock.json"].map((f) => statSync(join(ROOT, f)).mtimeMs));
  if (existsSync(BUILT_CLI) && statSync(BUILT_CLI).mtimeMs > sources) return 0;
  const t0 = performance.now();
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  return performance.now() - t0;
}

export async function startServerProcess(
  env: Record<string, string> = {},
  opts: {
    exposeGc?: boolean;
    dataDir?: string;
    port?: number;
    stdio?: "ignore" | "inherit";
    nodeArgs?: string[];
    /** Run `dist/src/cli/main.js serve` with --enable-source-maps, as `npm start` does (built first if stale), instead of src/main.ts through tsx. */
    built?: boolean;
  } = {},
): Promise<ServerProcess> {
  if (opts.built) ensureServerBuilt();
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "convmark-proc-"));
  const port = opts.port ?? (await freePort());
  const args = [
    ...(opts.exposeGc ? ["--expose-gc"] : []),
    ...(opts.nodeArgs ?? []),
    ...(opts.built ? ["--enable-source-maps"] : ["--import", "tsx"]),
    "--import",
    `data:text/javascript,${encodeURIComponent(PROBE)}`,
    ...(opts.built ? [BUILT_CLI, "serve"] : [join(ROOT, "src/main.ts")]),
  ];
  // Only what the caller passes: a developer's shell (MONGODB_URI, CONVMARK_*) must not leak in.
  const base: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "LANG"]) if (process.env[k] !== undefined) base[k] = process.env[k]!;
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...base, PORT: String(port), HOST: "127.0.0.1", CONVMARK_DATA_DIR: dataDir, LOG_LEVEL: "warn", CONVMARK_WORKERS: "1", ...env },
    stdio: ["ignore", opts.stdio ?? "ignore", "inherit", "ipc"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let gone = false;
  // Never outlive the caller (a crashed test must not leave a server running).
  const killOnExit = (): void => void child.kill("SIGKILL");
  process.once("exit", killOnExit);
  void exited.then(() => process.off("exit", killOnExit));
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (gone) throw new Error(`the server process exited during its start (${JSON.stringify(await exited)})`);
    try {
      const r = await fetch(`${url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (i > 600) {
      child.kill("SIGKILL");
      throw new Error("the server process did not become healthy within 60 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  function ask<T>(msg: object, type: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: { type?: string }): void => {
        if (m?.type !== type) return;
        child.off("message", onMessage);
        resolve(m as T);
      };
      child.on("message", onMessage);
      child.send(msg, (err) => err && reject(err));
    });
  }
  // utime + stime of a process, in clock ticks (100 per second on Linux); cluster workers are its children.
  const ticks = (pid: number): number => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return Number(f[11]) + Number(f[12]);
    } catch {
      return 0; // exited meanwhile
    }
  };
  const children = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  return {
    url,
    port,
    pid: child.pid!,
    dataDir,
    child,
    memory: (gcs = 2) => ask<MemoryReading>({ type: "convmark:memory", gc: gcs }, "convmark:memory"),
    heapSnapshot: async (file) => (await ask<{ file: string }>({ type: "convmark:heap-snapshot", file }, "convmark:heap-snapshot")).file,
    cpuMs: () => [child.pid!, ...children(child.pid!)].reduce((t, pid) => t + ticks(pid), 0) * 10,
    rss: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0) * 1024,
    async stop(stopOpts = {}) {
      const t0 = performance.now();
      if (!gone) child.kill(stopOpts.signal ?? "SIGTERM");
      const r = await exited;
      if (!stopOpts.keepData) rmSync(dataDir, { recursive: true, force: true });
      return { ...r, ms: performance.now() - t0 };
    },
  };
}
