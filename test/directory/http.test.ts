/**
 * The directory wired as the composition root will wire it (openDirectory → guard, service, lookup),
 * served over real HTTP on 127.0.0.1 by the Connect node adapter and the server's dual-protocol listener: gRPC-compatible clients and plain
 * curl-style Connect JSON both work. Independent of the server bootstrap.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { ConversationType, MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { openDirectory, type Directory } from "../../src/directory/index.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { createDualProtocolServer, type DualProtocolServer } from "../../src/server/listener.js";
import { reasonOf } from "../../src/service/convert.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { MarkStore } from "../../src/store/store.js";

const dir = mkdtempSync(join(tmpdir(), "convmark-directory-http-"));
let server: DualProtocolServer;
let url: string;
let directory: Directory;
let store: MarkStore;

beforeAll(async () => {
  const path = join(dir, "convmark.db");
  store = openSqliteStore({ path, limits: DEFAULT_LIMITS });
  directory = await openDirectory({ strict: true, sqlitePath: path });
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(MarkService, createMarkService({ store, limits: DEFAULT_LIMITS, guard: directory.guard }));
      directory.routes(router);
    },
  });
  // HTTP/1.1 and HTTP/2 (h2c) on one port, as the server listens: fetch and gRPC clients both work.
  server = createDualProtocolServer(handler);
  url = `http://127.0.0.1:${(await server.listen(0, "127.0.0.1")).port}`;
});

afterAll(async () => {
  await server.close(1000);
  await directory.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function post(method: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/convmark.v1.DirectoryService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("DirectoryService over HTTP", () => {
  it("speaks Connect JSON (the README's curl examples)", async () => {
    const reg = await post("RegisterUsers", { userIds: ["alice", "bob", ""] });
    expect(reg.status).toBe(200);
    expect(reg.json).toEqual({
      results: [
        { id: "alice", status: {}, changed: true },
        { id: "bob", status: {}, changed: true },
        // proto3 JSON leaves out default values: the empty id, changed=false.
        { status: { code: 3, message: "user_ids[2] must not be empty" } },
      ],
    });
    const created = await post("CreateGroup", { groupId: "team", memberUserIds: ["alice"] });
    expect(created.status).toBe(200);
    expect((created.json.group as Record<string, unknown>).memberUserIds).toEqual(["alice"]);
    const again = await post("CreateGroup", { groupId: "team" });
    expect(again.status).toBe(409);
    expect(again.json.code).toBe("already_exists");
    const missing = await post("DismissGroup", { groupId: "nope" });
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe("not_found");
    const malformed = await fetch(`${url}/convmark.v1.DirectoryService/RegisterUsers`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"userIds": 5}',
    });
    expect(malformed.status).toBe(400);
  });

  it("applies strict mode to MarkService over gRPC", async () => {
    const grpc = createGrpcTransport({ baseUrl: url });
    const dirClient = createClient(DirectoryService, grpc);
    const marks = createClient(MarkService, grpc);
    await dirClient.registerUsers({ userIds: ["carol", "dan"] });
    await dirClient.createGroup({ groupId: "g", memberUserIds: ["carol"] });
    await dirClient.createGroup({ groupId: "old", memberUserIds: ["carol"] });
    await dirClient.dismissGroup({ groupId: "old" });
    const res = await marks.updateConversations({
      updates: [
        { key: { ownerUserId: "carol", type: ConversationType.DIRECT, conversationId: "dan" }, setMarks: [1] },
        { key: { ownerUserId: "zed", type: ConversationType.DIRECT, conversationId: "dan" }, setMarks: [1] },
        { key: { ownerUserId: "carol", type: ConversationType.DIRECT, conversationId: "zed" }, setMarks: [1] },
        { key: { ownerUserId: "carol", type: ConversationType.GROUP, conversationId: "none" }, setMarks: [1] },
        { key: { ownerUserId: "carol", type: ConversationType.GROUP, conversationId: "old" }, setMarks: [1] },
        { key: { ownerUserId: "dan", type: ConversationType.GROUP, conversationId: "g" }, setMarks: [1] },
        { key: { ownerUserId: "carol", type: ConversationType.GROUP, conversationId: "g" }, setMarks: [1] },
      ],
    });
    expect(res.results.map((r) => [r.status?.code ?? 0, reasonOf(r.status) ?? ""])).toEqual([
      [0, ""],
      [Code.NotFound, "USER_NOT_FOUND"],
      [Code.NotFound, "PEER_NOT_FOUND"],
      [Code.NotFound, "GROUP_NOT_FOUND"],
      [Code.FailedPrecondition, "GROUP_DISMISSED"],
      [Code.PermissionDenied, "NOT_GROUP_MEMBER"],
      [0, ""],
    ]);
    const connect = createClient(DirectoryService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
    const err = await connect.addGroupMembers({ groupId: "old", userIds: ["dan"] }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err && Code[err.code]).toBe(Code[Code.FailedPrecondition]);
    expect((await connect.getGroup({ groupId: "old" })).group?.dismissed).toBe(true);
  });
});
