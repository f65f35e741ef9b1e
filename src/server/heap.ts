/**
 * How a serving process holds its V8 heap (docs/performance.md, "Heap settings").
 *
 * - **Young generation.** A request of UpdateConversations(100) lives for tens of milliseconds while
 *   32 others are in flight; with V8's default semi-space (up to 16 MiB) its objects survive two
 *   scavenges, are copied and promoted, and the old generation then needs mark-compacts for garbage
 *   that died young in all but name. Cluster workers get `--min-semi-space-size` and
 *   `--max-semi-space-size` (CONVMARK_SEMI_SPACE_MB, default 32) from the primary: a young
 *   generation that does not shrink when the process goes idle, so the first requests after a quiet
 *   spell do not promote everything while it grows back. A single process (CONVMARK_WORKERS=1)
 *   runs with the node flags it was given.
 * - **Idle compaction.** V8 lets the old generation grow to several times what survived its last
 *   mark-compact before it collects again, and gives nothing back while the process is idle: after
 *   a bulk load a worker with 100 MiB of live data sat at 200-330 MiB. When the event loop has been
 *   idle (under 5 % busy in every quarter of a second) for one second and the heap V8 holds has
 *   grown by CONVMARK_IDLE_COMPACT_MB (default 64) since the last compaction, the process runs one
 *   full GC (30-60 ms here), and V8 returns the pages it freed. It runs only on an idle loop and at
 *   most once per growth of that size; 0 turns it off.
 */
import { performance, type EventLoopUtilization } from "node:perf_hooks";
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export const DEFAULT_SEMI_SPACE_MB = 32;
export const DEFAULT_IDLE_COMPACT_MB = 64;

const SEMI_SPACE_FLAG = /^--(min|max)[-_]semi[-_]space[-_]size(=|$)/;

/**
 * The node flags of a cluster worker: the primary's own, plus `--min-semi-space-size=<mb>
 * --max-semi-space-size=<mb>` unless the operator already sized the young generation (either flag,
 * in the primary's flags or NODE_OPTIONS) or `mb` is 0.
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined, semiSpaceMb: number): string[] {
  const chosen = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].some((f) => SEMI_SPACE_FLAG.test(f));
  return chosen || semiSpaceMb === 0 ? [...execArgv] : [...execArgv, `--min-semi-space-size=${semiSpaceMb}`, `--max-semi-space-size=${semiSpaceMb}`];
}

export interface IdleCompactionOptions {
  /** Growth of the committed heap since the last compaction (bytes) that makes an idle process compact. */
  readonly growthBytes: number;
  /** How often to look (ms, default 250). */
  readonly intervalMs?: number;
  /** How long the loop must have been idle (ms, default 1000: every look in that time found it idle). */
  readonly idleMs?: number;
  /** Event-loop utilization below which the interval counts as idle (default 0.05). */
  readonly idleBelow?: number;
  readonly onCompact?: (info: { beforeBytes: number; afterBytes: number; ms: number }) => void;
  /** The collection could not run (the compaction stops). */
  readonly onError?: (e: unknown) => void;
}

let fullGc: (() => void) | undefined;
/**
 * V8's full collection (what gc() of --expose-gc runs): the flag set at run time and the function
 * taken from a new context, so the process needs no command-line flag. Not the inspector's
 * HeapProfiler.collectGarbage (a low-memory notification): that one also drops compiled code, and
 * the next requests after it ran 15-50 % slower while the code was compiled again.
 */
function collectAllGarbage(): void {
  if (!fullGc) {
    setFlagsFromString("--expose-gc");
    fullGc = runInNewContext("gc") as () => void;
  }
  fullGc();
}

/** Starts the idle compaction of this process; returns its stop. */
export function startIdleCompaction(opts: IdleCompactionOptions): () => void {
  if (opts.growthBytes <= 0) return () => {};
  const intervalMs = opts.intervalMs ?? 250;
  const idleBelow = opts.idleBelow ?? 0.05;
  const idleLooks = Math.max(1, Math.ceil((opts.idleMs ?? 1000) / intervalMs));
  /** Looks in a row that found the loop idle. */
  let quiet = 0;
  // The heap V8 holds from the system (committed), not what is live in it: what V8 keeps after its
  // own collections is what the process's RSS shows.
  const committed = () => getHeapStatistics().total_heap_size;
  let baseline = committed();
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    const held = committed();
    // V8 may have given memory back itself: that is the new baseline.
    if (held < baseline) baseline = held;
    quiet = busy < idleBelow ? quiet + 1 : 0;
    if (quiet < idleLooks || held - baseline < opts.growthBytes) return;
    const t = performance.now();
    try {
      collectAllGarbage();
    } catch (e) {
      // A node whose V8 refuses the flag: nothing to do but stop looking.
      clearInterval(timer);
      opts.onError?.(e);
      return;
    }
    baseline = committed();
    // The collection itself made this interval busy; the next one is measured from here.
    last = performance.eventLoopUtilization();
    quiet = 0;
    opts.onCompact?.({ beforeBytes: held, afterBytes: baseline, ms: performance.now() - t });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
