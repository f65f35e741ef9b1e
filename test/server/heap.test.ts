/** The serving process's heap settings (src/server/heap.ts): the workers' young generation and the idle compaction. */
import { getHeapStatistics } from "node:v8";
import { describe, expect, it } from "vitest";
import { startIdleCompaction, workerExecArgv } from "../../src/server/heap.js";

describe("workerExecArgv", () => {
  it("sizes the workers' young generation unless the operator did", () => {
    expect(workerExecArgv(["--enable-source-maps"], undefined, 32)).toEqual(["--enable-source-maps", "--min-semi-space-size=32", "--max-semi-space-size=32"]);
    expect(workerExecArgv([], "", 16)).toEqual(["--min-semi-space-size=16", "--max-semi-space-size=16"]);
    // The operator's own choice, in the primary's flags or NODE_OPTIONS, in either spelling, wins.
    expect(workerExecArgv(["--max-semi-space-size=64"], undefined, 32)).toEqual(["--max-semi-space-size=64"]);
    expect(workerExecArgv(["--inspect"], "--max_old_space_size=512 --min_semi_space_size=8", 32)).toEqual(["--inspect"]);
    // 0: V8's own sizing.
    expect(workerExecArgv(["--inspect"], undefined, 0)).toEqual(["--inspect"]);
  });
});

/** Objects that survive into the old generation, then become garbage: what a bulk load leaves. */
function promotedGarbage(mb: number): void {
  // Each chunk stays referenced while the later ones are made, through the scavenges that
  // allocation triggers, so it is promoted; all of them are garbage once this returns.
  const keep: { i: number; s: string }[][] = [];
  for (let c = 0; c < mb; c++) keep.push(Array.from({ length: 8000 }, (_, i) => ({ i, s: `row-${c}-${i}` })));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("idle compaction", () => {
  it("gives the heap back once the loop has been idle, and only once per growth", async () => {
    const compactions: { beforeBytes: number; afterBytes: number }[] = [];
    const stop = startIdleCompaction({ growthBytes: 48 << 20, intervalMs: 100, idleMs: 300, onCompact: (c) => compactions.push(c) });
    try {
      promotedGarbage(150);
      const held = getHeapStatistics().total_heap_size;
      for (let t = 0; t < 50 && compactions.length === 0; t++) await sleep(100);
      expect(compactions).toHaveLength(1);
      const c = compactions[0]!;
      expect(c.beforeBytes).toBeGreaterThanOrEqual(held - (16 << 20));
      // The garbage is gone from what V8 holds, not just from what is live.
      expect(c.beforeBytes - c.afterBytes).toBeGreaterThan(48 << 20);
      // Idle, without new growth: no second collection.
      await sleep(1000);
      expect(compactions).toHaveLength(1);
    } finally {
      stop();
    }
  });

  it("leaves a busy loop alone, however much the heap grew", async () => {
    const compactions: unknown[] = [];
    const stop = startIdleCompaction({ growthBytes: 16 << 20, intervalMs: 100, idleMs: 300, onCompact: (c) => compactions.push(c) });
    try {
      // The loop busy for 1.5 s (work in 20 ms slices, so the timer still fires and looks), while garbage grows.
      const end = Date.now() + 1500;
      while (Date.now() < end) {
        const slice = Date.now() + 20;
        promotedGarbage(4);
        while (Date.now() < slice);
        await new Promise((r) => setImmediate(r));
      }
      expect(compactions).toEqual([]);
    } finally {
      stop();
    }
  });

  it("is off with a growth of 0", async () => {
    const compactions: unknown[] = [];
    const stop = startIdleCompaction({ growthBytes: 0, intervalMs: 50, idleMs: 50, onCompact: (c) => compactions.push(c) });
    promotedGarbage(80);
    await sleep(500);
    stop();
    expect(compactions).toEqual([]);
  });
});
