/** Runs convmark as its own process, as `npm start` does (compiled JavaScript in dist/), for the bench. */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, statSync, utimesSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

export interface ServerOptions {
  readonly repoRoot: string;
  readonly dataDir: string;
  /** Extra environment (vendor credentials, limits). */
  readonly env: Record<string, string>;
  /** Directory for `node --cpu-prof`; absent: no profiling. */
  readonly cpuProfileDir?: string;
  /** Extra node flags for the server (its cluster workers inherit them), e.g. V8 heap settings under test. */
  readonly nodeFlags?: readonly string[];
}

// Asks the server's inspector (loopback only) for a full GC; Node 20 has WebSocket behind a flag only.
const GC_SCRIPT = `
const ws = new WebSocket(process.argv[1]);
const fail = (m) => { console.error(m); process.exit(1); };
setTimeout(() => fail("timeout"), 30000).unref();
let id = 0;
const send = () => ws.send(JSON.stringify({ id: ++id, method: "HeapProfiler.collectGarbage" }));
ws.onopen = send;
ws.onmessage = (e) => {
  const m = JSON.parse(String(e.data));
  if (m.id === undefined) return;
  if (m.error) fail(JSON.stringify(m.error));
  if (id < 2) send(); else { ws.close(); process.exit(0); }
};
ws.onerror = () => fail("websocket error");
`;

// Node 22+ has WebSocket without a flag.
const WEBSOCKET_FLAG = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-websocket"] : [];

export interface BenchServer {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  readonly dbPath: string;
  /** The processes serving: the workers of a cluster, or the one process. */
  servingPids(): number[];
  /** Resident and peak resident memory in MiB, from /proc/<pid>/status: the largest serving process. */
  memory(): { rssMb: number; hwmMb: number };
  /** User+system CPU seconds all server processes (primary and workers) have used so far. */
  cpuSeconds(): number;
  /** Two full garbage collections in every server process (through their loopback inspectors); false if that failed. */
  collectGarbage(): Promise<boolean>;
  /** Rejects when the server exits before stop() was called. */
  readonly died: Promise<never>;
  /** SIGTERM (graceful: a --cpu-prof profile gets written), SIGKILL after the timeout. */
  stop(timeoutMs?: number): Promise<void>;
  /** The last lines the server wrote, for error messages. */
  tail(): string;
}

// Environment variables a developer's shell may carry that would change what is measured.
const SCRUBBED = /^(MONGODB_|CONVMARK_|ZEGO_|TENCENT_|OPENIM_|PORT$|HOST$|LOG_LEVEL$|NODE_OPTIONS$)/;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const CLK_TCK = 100; // getconf CLK_TCK on Linux

export function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** Child pids of a process (the cluster's workers). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function procMemory(pid: number): { rssMb: number; hwmMb: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
  } catch {
    return { rssMb: Number.NaN, hwmMb: Number.NaN };
  }
}

/** Newest modification time (ms) of the files under `dir` (recursively), or 0. */
function newestMtime(dir: string): number {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const building = new Map<string, Promise<void>>();

/**
 * Compiles src/ and gen/ to dist/ as \`npm start\` does (tsc -p tsconfig.build.json), unless dist is
 * already newer than every input (tsc's own no-op check costs ~5 s of CPU, 15-20 s on a loaded
 * machine). Runs once per process; concurrent callers share the build.
 */
export function buildServer(repoRoot: string): Promise<void> {
  let p = building.get(repoRoot);
  if (!p) {
    p = (async () => {
      const info = join(repoRoot, "dist", ".tsbuildinfo");
      let built = 0;
      try {
        built = statSync(info).mtimeMs;
      } catch {
        // never built
      }
      const inputs = Math.max(
        newestMtime(join(repoRoot, "src")),
        newestMtime(join(repoRoot, "gen")),
        ...["tsconfig.json", "tsconfig.build.json", "package.json", "package-lock.json"].map((f) => {
          try {
            return statSync(join(repoRoot, f)).mtimeMs;
          } catch {
            return 0;
          }
        }),
      );
      if (built > inputs) return;
      const tsc = spawn(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json", "--incremental", "--tsBuildInfoFile", "dist/.tsbuildinfo"], {
        cwd: repoRoot,
        stdio: "inherit",
      });
      const code = await new Promise<number | null>((resolve, reject) => {
        tsc.once("error", reject);
        tsc.once("exit", resolve);
      });
      if (code !== 0) throw new Error(`the build (tsc -p tsconfig.build.json) failed with exit code ${code}`);
      // tsc leaves its build info alone when nothing changed; mark dist as checked against these inputs.
      const t = new Date();
      utimesSync(info, t, t);
    })();
    building.set(repoRoot, p);
  }
  return p;
}

export async function startServer(opts: ServerOptions): Promise<BenchServer> {
  const port = await freePort();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SCRUBBED.test(k)) env[k] = v;
  Object.assign(env, {
    PORT: String(port),
    HOST: "127.0.0.1",
    CONVMARK_DATA_DIR: opts.dataDir,
    // One info line per RPC would dominate what is measured.
    LOG_LEVEL: "warn",
    ...opts.env,
  });
  const nodeArgs = [
    // Idle unless the bench connects (only after the measurements, to force a GC before reading memory).
    "--inspect=127.0.0.1:0",
    ...(opts.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfileDir}`] : []),
    ...(opts.nodeFlags ?? []),
    "dist/src/main.js",
  ];
  // What `npm start` runs: the build must be current, so the numbers are those of the production process.
  await buildServer(opts.repoRoot);
  const child: ChildProcess = spawn(process.execPath, nodeArgs, { cwd: opts.repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const inspectorUrls = new Set<string>();
  // One partial line per stream: a chunk may end inside a line (an inspector URL cut in two would
  // make collectGarbage fail).
  const partial = new Map<NodeJS.ReadableStream, string>();
  const keepFrom = (stream: NodeJS.ReadableStream) => (chunk: Buffer) => {
    const text = (partial.get(stream) ?? "") + chunk.toString("utf8");
    const cut = text.lastIndexOf("\n");
    partial.set(stream, text.slice(cut + 1));
    if (cut >= 0) keep(text.slice(0, cut));
  };
  const keep = (text: string) => {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const ws = /Debugger listening on (ws:\/\/\S+)/.exec(line);
      if (ws) inspectorUrls.add(ws[1]!);
      else if (!/^For help, see:/.test(line)) lines.push(line);
    }
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stdout!.on("data", keepFrom(child.stdout!));
  child.stderr!.on("data", keepFrom(child.stderr!));
  const tail = () => lines.slice(-30).join("\n");

  let stopping = false;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const died = exited.then((code) => {
    if (stopping) return new Promise<never>(() => {});
    throw new Error(`the convmark server exited (code ${code}) during the bench; its last output:\n${tail()}`);
  });
  died.catch(() => {});

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the convmark server did not start (exit ${child.exitCode}):\n${tail()}`);
    try {
      const res = await fetch(`${url}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      const body = await res.text();
      if (res.ok && body.includes("SERVING")) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the convmark server did not answer health checks within 60 s:\n${tail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const pid = child.pid!;
  // A cluster answers health as soon as its first worker listens, and the primary deals every
  // connection made before the others listen to that one worker: the gRPC rows' few long-lived
  // connections would all land there. Wait until every worker has opened the store (it listens
  // right after), then a little longer.
  const workers = Number(env.CONVMARK_WORKERS ?? availableParallelism());
  if (workers > 1) {
    const dbPath = resolve(opts.dataDir, "convmark.db");
    const opened = (p: number) => {
      try {
        return readdirSync(`/proc/${p}/fd`).some((fd) => {
          try {
            return readlinkSync(`/proc/${p}/fd/${fd}`) === dbPath;
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    };
    for (;;) {
      const children = childPids(pid);
      if (children.length >= workers && children.every(opened)) break;
      if (child.exitCode !== null) throw new Error(`the convmark server exited (code ${child.exitCode}) while its workers started:\n${tail()}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`the convmark server's ${workers} workers did not all start within 60 s:\n${tail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  // CPU of processes seen so far, so a worker's CPU is still counted after it exits.
  const lastCpu = new Map<number, number>();
  const servingPids = () => {
    const workers = childPids(pid);
    return workers.length ? workers : [pid];
  };
  return {
    pid,
    port,
    url,
    dbPath: join(opts.dataDir, "convmark.db"),
    servingPids,
    memory: () => {
      const all = servingPids().map(procMemory);
      return { rssMb: Math.max(...all.map((m) => m.rssMb)), hwmMb: Math.max(...all.map((m) => m.hwmMb)) };
    },
    cpuSeconds: () => {
      for (const p of [pid, ...childPids(pid)]) {
        const s = procCpuSeconds(p);
        if (!Number.isNaN(s)) lastCpu.set(p, s);
      }
      let sum = 0;
      for (const s of lastCpu.values()) sum += s;
      return sum;
    },
    async collectGarbage() {
      if (inspectorUrls.size === 0) return false;
      const one = (url: string) =>
        new Promise<boolean>((resolve) => {
          const helper = spawn(process.execPath, [...WEBSOCKET_FLAG, "--no-warnings", "-e", GC_SCRIPT, url], { stdio: ["ignore", "ignore", "pipe"] });
          let why = "";
          helper.stderr!.on("data", (c: Buffer) => (why += c.toString("utf8")));
          helper.once("error", (e) => {
            process.stderr.write(`[bench] full GC through ${url}: ${e.message}\n`);
            resolve(false);
          });
          helper.once("exit", (code) => {
            if (code !== 0) process.stderr.write(`[bench] full GC through ${url} failed (exit ${code}): ${why.trim().slice(0, 300)}\n`);
            resolve(code === 0);
          });
        });
      const done = await Promise.all([...inspectorUrls].map(one));
      return done.every(Boolean);
    },
    died,
    tail,
    async stop(timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stopping = true;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      try {
        await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** V8 heap figures (MiB) from the server's Prometheus endpoint (prom-client's default metrics). */
export async function heapFromMetrics(url: string): Promise<{ heapUsedMb: number; heapTotalMb: number; externalMb: number } | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN) / 2 ** 20;
    return {
      heapUsedMb: metric("nodejs_heap_size_used_bytes"),
      heapTotalMb: metric("nodejs_heap_size_total_bytes"),
      externalMb: metric("nodejs_external_memory_bytes"),
    };
  } catch {
    return undefined;
  }
}

/**
 * From the server's /metrics (summed over its workers): how many calls of a method it has handled
 * (grpc_server_handling_seconds_count) and how many within `le` seconds (the bucket of that bound,
 * which must be one of the histogram's: 0.001 … 10). Undefined if /metrics cannot be read.
 */
export async function handledWithin(url: string, method: string, le: number): Promise<{ count: number; within: number } | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    let count = 0;
    let within = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith("grpc_server_handling_seconds_") || !line.includes(`grpc_method="${method}"`)) continue;
      const value = Number(line.slice(line.lastIndexOf(" ") + 1));
      if (line.startsWith("grpc_server_handling_seconds_count")) count += value;
      else if (line.startsWith("grpc_server_handling_seconds_bucket") && line.includes(`le="${le}"`)) within += value;
    }
    return { count, within };
  } catch {
    return undefined;
  }
}
