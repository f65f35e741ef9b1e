// The replay cache the workers of a cluster share (one SQLite file, opened by each worker).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSharedNonceStore, type SharedNonceStore } from "../../src/cluster/nonce-store.js";

const dirs: string[] = [];
const opened: SharedNonceStore[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function pair(capacity: number, clock: { t: number }): [SharedNonceStore, SharedNonceStore] {
  const dir = mkdtempSync(join(tmpdir(), "convmark-nonces-"));
  dirs.push(dir);
  const path = join(dir, "nonces.db");
  const a = openSharedNonceStore(path, capacity, () => clock.t);
  const b = openSharedNonceStore(path, capacity, () => clock.t);
  opened.push(a, b);
  return [a, b];
}

describe("shared nonce store", () => {
  it("accepts a nonce once across handles, and again after it expired", () => {
    const clock = { t: 1_000_000 };
    const [a, b] = pair(100, clock);
    expect(a.has("n1")).toBe(false);
    expect(a.record("n1", 5000)).toBe("recorded");
    expect(b.has("n1")).toBe(true);
    expect(b.record("n1", 5000)).toBe("replay");
    expect(a.record("n1", 5000)).toBe("replay");
    clock.t += 5001;
    expect(b.has("n1")).toBe(false);
    expect(b.record("n1", 5000)).toBe("recorded");
    expect(a.record("n1", 5000)).toBe("replay");
  });

  it("refuses new nonces when the server-wide capacity is reached, and frees expired ones", () => {
    const clock = { t: 2_000_000 };
    const [a, b] = pair(4, clock);
    expect(a.record("x1", 1000)).toBe("recorded");
    expect(b.record("x2", 1000)).toBe("recorded");
    expect(a.record("x3", 60_000)).toBe("recorded");
    expect(b.record("x4", 60_000)).toBe("recorded");
    clock.t += 1; // the handles count what the other wrote when they sweep
    expect(a.record("x5", 1000)).toBe("full");
    expect(b.record("x5", 1000)).toBe("full");
    expect(a.record("x3", 1000)).toBe("replay");
    clock.t += 1500; // x1 and x2 expired
    expect(a.record("x5", 1000)).toBe("recorded");
    expect(b.size).toBe(3);
  });
});
