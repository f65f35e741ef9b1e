// End-to-end: one port, every protocol and client the service must support.
import { create, fromBinary, toBinary, type MessageShape, type DescMessage } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { runBuf, sleep, startApp, type Started } from "./helpers.js";

const running: Started[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.app.close(1000)));
});

async function start(...args: Parameters<typeof startApp>): Promise<Started> {
  const s = await startApp(...args);
  running.push(s);
  return s;
}

function grpcCodec<D extends DescMessage>(schema: D) {
  return {
    serialize: (m: MessageShape<D>) => Buffer.from(toBinary(schema, m)),
    deserialize: (b: Buffer) => fromBinary(schema, b),
  };
}
const req = grpcCodec(HealthCheckRequestSchema);
const res = grpcCodec(HealthCheckResponseSchema);

function grpcCheck(client: grpc.Client, service: string): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      req.serialize,
      res.deserialize,
      create(HealthCheckRequestSchema, { service }),
      (err, value) => (err ? reject(err) : resolve(value!)),
    );
  });
}

// A fake MarkService so reflection has to ship a file with imports (timestamp.proto, status.proto).
const markRoutes = (router: import("@connectrpc/connect").ConnectRouter) =>
  router.service(MarkService, {
    getConversation(r) {
      return {
        conversation: {
          key: r.key,
          marks: [1, 3],
          markBits: 5n,
          version: 7n,
          updateTime: timestampFromDate(new Date("2024-05-06T07:08:09Z")),
        },
      };
    },
  });

describe("gRPC over h2c (grpc-js)", () => {
  it("Health.Check returns SERVING for '' and registered services, NOT_FOUND otherwise", async () => {
    const s = await start(markRoutes, [MarkService]);
    const client = new grpc.Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    try {
      expect((await grpcCheck(client, "")).status).toBe(ServingStatus.SERVING);
      expect((await grpcCheck(client, "convmark.v1.MarkService")).status).toBe(ServingStatus.SERVING);
      await expect(grpcCheck(client, "no.such.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
      s.app.health.set("convmark.v1.MarkService", ServingStatus.NOT_SERVING);
      expect((await grpcCheck(client, "convmark.v1.MarkService")).status).toBe(ServingStatus.NOT_SERVING);
    } finally {
      client.close();
    }
  });

  it("Health.Watch streams the current status, then changes, and ends on shutdown without waiting for the grace period", async () => {
    const s = await start();
    const client = new grpc.Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    const seen: ServingStatus[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => {
      const call = client.makeServerStreamRequest(
        "/grpc.health.v1.Health/Watch",
        req.serialize,
        res.deserialize,
        create(HealthCheckRequestSchema, { service: "" }),
      );
      call.on("data", (m: HealthCheckResponse) => seen.push(m.status));
      call.on("error", () => {});
      call.on("status", resolve);
    });
    await waitFor(() => seen.length === 1);
    s.app.health.set("", ServingStatus.NOT_SERVING);
    await waitFor(() => seen.length === 2);
    s.app.health.set("", ServingStatus.SERVING);
    await waitFor(() => seen.length === 3);
    const t0 = Date.now();
    await s.app.close(20_000);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const status = await ended;
    expect(status.code).toBe(grpc.status.OK);
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    client.close();
  });

  it("Health.Watch on an unknown service reports SERVICE_UNKNOWN and stays open", async () => {
    const s = await start();
    const client = createClient(Health, createGrpcTransport({ baseUrl: s.baseUrl }));
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const done = (async () => {
      try {
        for await (const m of client.watch({ service: "later.Service" }, { signal: abort.signal })) {
          seen.push(m.status);
          if (seen.length === 1) s.app.health.set("later.Service", ServingStatus.SERVING);
          if (seen.length === 2) abort.abort();
        }
      } catch (e) {
        expect(ConnectError.from(e).code).toBe(Code.Canceled);
      }
    })();
    await done;
    expect(seen).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING]);
    // The server noticed the cancellation and logged it as the end of the RPC.
    await waitFor(() => s.logLines.some((l) => l.procedure === "/grpc.health.v1.Health/Watch"));
  });
});

describe("Connect and gRPC-Web over HTTP/1.1", () => {
  it("Health.Check with plain fetch (Connect JSON)", async () => {
    const s = await start();
    const ok = await fetch(`${s.baseUrl}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: "SERVING" });

    const missing = await fetch(`${s.baseUrl}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "nope.Service" }),
    });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "not_found" });
  });

  it("Health.Check with createConnectTransport({ httpVersion: '1.1' })", async () => {
    const s = await start();
    const client = createClient(Health, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }));
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
    await expect(client.check({ service: "nope.Service" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("Health.Check with createGrpcWebTransport({ httpVersion: '1.1' })", async () => {
    const s = await start();
    const client = createClient(Health, createGrpcWebTransport({ baseUrl: s.baseUrl, httpVersion: "1.1" }));
    expect((await client.check({ service: "grpc.health.v1.Health" })).status).toBe(ServingStatus.SERVING);
    await expect(client.check({ service: "nope.Service" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("the Connect protocol also works over h2c", async () => {
    const s = await start();
    const client = createClient(Health, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "2" }));
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
  });
});

describe("buf curl through server reflection", () => {
  it("lists services and methods (v1 and v1alpha reflection)", async () => {
    const s = await start(markRoutes, [MarkService]);
    const base = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"];
    const { stdout } = await runBuf([...base, s.baseUrl, "--list-services"]);
    expect(stdout.trim().split("\n").sort()).toEqual([
      "convmark.v1.MarkService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
    const alpha = await runBuf([...base, "--reflect-protocol", "grpc-v1alpha", s.baseUrl, "--list-methods"]);
    expect(alpha.stdout).toContain("convmark.v1.MarkService/GetConversation");
    expect(alpha.stdout).toContain("grpc.health.v1.Health/Watch");
  });

  it("calls Health.Check and MarkService.GetConversation using the schema from reflection", async () => {
    const s = await start(markRoutes, [MarkService]);
    const base = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"];
    const check = await runBuf([...base, "-d", "{}", `${s.baseUrl}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(check.stdout)).toEqual({ status: "SERVING" });

    const body = JSON.stringify({ key: { ownerUserId: "u1", type: "CONVERSATION_TYPE_GROUP", conversationId: "g1" } });
    const got = await runBuf([...base, "-d", body, `${s.baseUrl}/convmark.v1.MarkService/GetConversation`]);
    expect(JSON.parse(got.stdout)).toEqual({
      conversation: {
        key: { ownerUserId: "u1", type: "CONVERSATION_TYPE_GROUP", conversationId: "g1" },
        marks: [1, 3],
        markBits: "5",
        version: "7",
        updateTime: "2024-05-06T07:08:09Z",
      },
    });
  });
});

describe("metrics and logging", () => {
  it("counts RPCs under the go-grpc-prometheus names and labels, serves /metrics over HTTP/1.1 and HTTP/2, logs one line per RPC", async () => {
    const s = await start();
    const client = createClient(Health, createGrpcTransport({ baseUrl: s.baseUrl }));
    await client.check({});
    await client.check({});
    await expect(client.check({ service: "x.Y" })).rejects.toThrow();

    const text = await (await fetch(`${s.baseUrl}/metrics`)).text();
    const labels = 'grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check"';
    expect(text).toContain(`grpc_server_started_total{${labels}} 3`);
    expect(text).toContain(`grpc_server_handled_total{${labels},grpc_code="OK"} 2`);
    expect(text).toContain(`grpc_server_handled_total{${labels},grpc_code="NotFound"} 1`);
    expect(text).toContain(`grpc_server_handling_seconds_count{${labels}} 3`);
    expect(text).toMatch(/^grpc_server_handling_seconds_bucket\{le="0.001",grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check"\} \d+$/m);

    const h2text = await h2Get(s.baseUrl, "/metrics");
    expect(h2text.status).toBe(200);
    expect(h2text.body).toContain("grpc_server_handled_total");

    const rpcLines = s.logLines.filter((l) => l.msg === "rpc");
    expect(rpcLines).toHaveLength(3);
    expect(rpcLines[0]).toMatchObject({ procedure: "/grpc.health.v1.Health/Check", code: "OK" });
    expect(typeof rpcLines[0]!.durationMs).toBe("number");
    expect(rpcLines[2]).toMatchObject({ code: "NotFound" });

    // Anything else that is not an RPC still gets Connect's 404.
    expect((await fetch(`${s.baseUrl}/nothing`)).status).toBe(404);
  });
});

function h2Get(baseUrl: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({ ":path": path });
    let status = 0;
    let body = "";
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => (body += d));
    stream.on("end", () => {
      session.close();
      resolve({ status, body });
    });
    stream.on("error", reject);
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await sleep(10);
  }
}
