// Shared fixtures for the server tests: an app on 127.0.0.1:0 with a capturing logger.
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { buildApp, type App, type BuildAppOptions } from "../../src/server/app.js";

export const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

export interface Started {
  app: App;
  port: number;
  baseUrl: string;
  logLines: Record<string, unknown>[];
  registry: Registry;
}

export async function startApp(
  routes: (router: ConnectRouter) => void = () => {},
  services: DescService[] = [],
  extra: Partial<BuildAppOptions> = {},
): Promise<Started> {
  const logLines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split("\n")) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const registry = new Registry();
  const app = await buildApp({ routes, services, logger: pino(sink), metricsRegistry: registry, ...extra });
  const addr = await app.listen(0, "127.0.0.1");
  return { app, port: addr.port, baseUrl: `http://127.0.0.1:${addr.port}`, logLines, registry };
}

export function runBuf(args: string[], timeoutMs = 30_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(BUF, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`buf ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
