/**
 * The ceilings the bench compares convmark with, served by one process of their own (run by
 * bench/run.ts): a plain node:http JSON echo (the platform's limit) and a bare connect-node
 * Health/Check over HTTP/1.1 with no convmark code at all (the framework's limit). It prints
 * `{"echo":PORT,"connect":PORT}` on stdout once both listen, and exits on SIGTERM.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";

const SERVING = JSON.stringify({ status: "SERVING" });

// What a minimal JSON API does per request: read the body, parse it, answer JSON.
function echo(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    try {
      JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    } catch {
      res.writeHead(400, { "content-type": "application/json" }).end('{"error":"bad json"}');
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(SERVING) }).end(SERVING);
  });
}

const bareConnect = connectNodeAdapter({
  routes(router) {
    router.service(Health, { check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }) });
  },
});

const listen = (handler: Parameters<typeof createServer>[1]) =>
  new Promise<number>((resolve) => {
    const s = createServer(handler!);
    s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port));
  });

const [echoPort, connectPort] = await Promise.all([listen(echo), listen(bareConnect)]);
process.stdout.write(`${JSON.stringify({ echo: echoPort, connect: connectPort })}\n`);
process.on("SIGTERM", () => process.exit(0));
