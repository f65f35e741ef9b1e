/** Starts the real convmark server (all wiring, embedded SQLite in a temp dir) on 127.0.0.1 for tests. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { startConvmark, type RunningConvmark } from "../../src/bootstrap.js";
import { anyTypeRegistry } from "../../src/service/json-registry.js";

export interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** MarkService over Connect JSON on HTTP/1.1. */
  readonly marks: Client<typeof MarkService>;
  readonly running: RunningConvmark;
  /** Stops the server; the data dir is removed unless keepData (for restart tests). */
  close(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startTestServer(env: Record<string, string> = {}, opts: { dataDir?: string; leanUnary?: boolean } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "convmark-test-"));
  const running = await startConvmark(
    { PORT: "0", HOST: "127.0.0.1", CONVMARK_DATA_DIR: dataDir, LOG_LEVEL: "silent", ...env },
    { logger: pino({ level: env.LOG_LEVEL ?? "silent" }), ...(opts.leanUnary !== undefined ? { leanUnary: opts.leanUnary } : {}) },
  );
  const transport = createConnectTransport({ baseUrl: running.url, httpVersion: "1.1", useBinaryFormat: false, jsonOptions: { registry: anyTypeRegistry } });
  return {
    url: running.url,
    port: running.port,
    dataDir,
    marks: createClient(MarkService, transport),
    running,
    async close(closeOpts = {}) {
      await running.close();
      if (!closeOpts.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
