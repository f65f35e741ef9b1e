/** Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by package. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly functions: { name: string; where: string; selfMs: number }[];
  readonly packages: { name: string; selfMs: number }[];
}

/**
 * The newest .cpuprofile in dir, if any. Node names them CPU.<date>.<time>.<pid>.<thread>.<seq>; with
 * `pid`, only that process's main thread (thread 0: the tsx loader runs on a worker thread).
 */
export function newestProfile(dir: string, since = 0, pid?: number): string | undefined {
  let best: { path: string; mtime: number } | undefined;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const name of names) {
    if (!name.endsWith(".cpuprofile")) continue;
    if (pid !== undefined && !name.includes(`.${pid}.0.`)) continue;
    const path = join(dir, name);
    const mtime = statSync(path).mtimeMs;
    if (mtime >= since && (!best || mtime > best.mtime)) best = { path, mtime };
  }
  return best?.path;
}

function packageOf(url: string, fn: string): string {
  if (!url) return fn.startsWith("(") ? fn : "(native)";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[1] ?? url.slice(5)}`;
  const src = url.indexOf("/src/");
  if (src >= 0) return `convmark ${url.slice(src + 1).split("/").slice(0, 2).join("/")}`;
  const gen = url.indexOf("/gen/");
  if (gen >= 0) return "convmark gen/";
  return url;
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const fns = new Map<string, { name: string; where: string; selfMs: number }>();
  const pkgs = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    totalUs += us;
    if (f.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const name = f.functionName || "(anonymous)";
    const short = f.url.replace(/^file:\/\//, "").replace(/^.*\/(node_modules|src|gen|bench)\//, "$1/");
    const where = f.url ? `${short}:${f.lineNumber + 1}:${f.columnNumber + 1}` : "";
    const key = `${name} ${where}`;
    const e = fns.get(key) ?? { name, where, selfMs: 0 };
    e.selfMs += us / 1000;
    fns.set(key, e);
    const pkg = packageOf(f.url, name);
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us / 1000);
  }
  return {
    file,
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    functions: [...fns.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top),
    packages: [...pkgs.entries()]
      .map(([name, selfMs]) => ({ name, selfMs }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const busy = s.totalMs - s.idleMs;
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1).padStart(5)}%`;
  const lines = [
    `CPU profile ${s.file}: ${(busy / 1000).toFixed(1)} s busy of ${(s.totalMs / 1000).toFixed(1)} s`,
    "",
    "self time by package (of busy time):",
    ...s.packages.map((p) => `  ${pct(p.selfMs)}  ${p.name}`),
    "",
    "self time by function (of busy time):",
    ...s.functions.map((f) => `  ${pct(f.selfMs)}  ${f.name}  ${f.where}`),
  ];
  return lines.join("\n");
}

// `tsx bench/profile.ts [file.cpuprofile]`: summarize a profile (the newest in bench/profiles by default).
if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2] ?? newestProfile(new URL("./profiles", import.meta.url).pathname);
  if (!file) {
    console.error("no .cpuprofile given and none in bench/profiles");
    process.exit(1);
  }
  console.log(formatProfile(summarizeProfile(file)));
}
