// installShutdownHandlers with an injected process, and the health registry's shutdown behaviour.
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { installShutdownHandlers, type ShutdownProcess } from "../../src/server/app.js";
import { createHealthRegistry } from "../../src/server/health.js";
import { sleep, startApp } from "./helpers.js";

function fakeProcess() {
  const emitter = new EventEmitter();
  const exits: number[] = [];
  const proc: ShutdownProcess & { emit(s: NodeJS.Signals): void; count(s: NodeJS.Signals): number } = {
    on: (s, l) => emitter.on(s, l),
    off: (s, l) => emitter.off(s, l),
    exit: (code) => void exits.push(code),
    emit: (s) => void emitter.emit(s),
    count: (s) => emitter.listenerCount(s),
  };
  return { proc, exits };
}

describe("installShutdownHandlers", () => {
  it("first signal: NOT_SERVING, graceful close, onClosed, exit 0; a second signal exits 1 at once", async () => {
    const s = await startApp();
    const { proc, exits } = fakeProcess();
    const order: string[] = [];
    let release!: () => void;
    const onClosedGate = new Promise<void>((r) => (release = r));
    const app = {
      close: async () => {
        order.push(`close:${s.app.health.get("") === ServingStatus.SERVING ? "serving" : "?"}`);
        await s.app.close(1000);
        order.push(`closed:${s.app.health.get("")}`);
      },
    };
    installShutdownHandlers(app, async () => {
      order.push("onClosed");
      await onClosedGate;
    }, { process: proc });

    proc.emit("SIGTERM");
    await sleep(50);
    expect(order).toEqual(["close:serving", `closed:${ServingStatus.NOT_SERVING}`, "onClosed"]);
    expect(exits).toEqual([]);
    proc.emit("SIGINT");
    expect(exits).toEqual([1]);
    release();
    await sleep(10);
    expect(exits).toEqual([1, 0]);
  });

  it("exits 1 when onClosed throws, and can be uninstalled", async () => {
    const { proc, exits } = fakeProcess();
    const uninstall = installShutdownHandlers({ close: async () => {} }, () => {
      throw new Error("store close failed");
    }, { process: proc });
    expect(proc.count("SIGTERM")).toBe(1);
    proc.emit("SIGINT");
    await sleep(10);
    expect(exits).toEqual([1]);
    uninstall();
    expect(proc.count("SIGTERM")).toBe(0);
    expect(proc.count("SIGINT")).toBe(0);
  });
});

describe("health registry", () => {
  it("notifies subscribers of changes only, and ignores set() after shutdown", () => {
    const reg = createHealthRegistry(["a.A"]);
    const seen: ServingStatus[] = [];
    const unsubscribe = reg.subscribe("a.A", (st) => seen.push(st));
    reg.set("a.A", ServingStatus.SERVING); // no change
    reg.set("a.A", ServingStatus.NOT_SERVING);
    reg.setAll(ServingStatus.SERVING);
    expect(reg.get("")).toBe(ServingStatus.SERVING);
    reg.shutdown();
    reg.set("a.A", ServingStatus.SERVING);
    expect(reg.get("a.A")).toBe(ServingStatus.NOT_SERVING);
    expect(reg.get("")).toBe(ServingStatus.NOT_SERVING);
    expect(reg.shutdownSignal.aborted).toBe(true);
    expect(seen).toEqual([ServingStatus.NOT_SERVING, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    unsubscribe();
    expect(reg.get("unknown")).toBeUndefined();
    expect(reg.names().sort()).toEqual(["", "a.A"]);
  });
});
