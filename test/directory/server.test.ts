/** End-to-end over the REAL server (test/support/harness.ts): the directory as src/bootstrap.ts wires it. */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { ConfigError } from "../../src/config.js";
import { startConvmark } from "../../src/bootstrap.js";
import { reasonOf } from "../../src/service/convert.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(env: Record<string, string> = {}) {
  const server = await startTestServer(env);
  servers.push(server);
  const directory = createClient(DirectoryService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  return { server, directory };
}

const star = (owner: string, conversationId: string, type: ConversationType) => ({
  key: { ownerUserId: owner, type, conversationId },
  setMarks: [1],
});

describe("directory in the real server", () => {
  it("CONVMARK_STRICT_DIRECTORY=1: MarkService refuses what the directory does not know", async () => {
    const { server, directory } = await start({ CONVMARK_STRICT_DIRECTORY: "1" });
    await directory.registerUsers({ userIds: ["alice", "bob"] });
    await directory.createGroup({ groupId: "g", memberUserIds: ["alice"] });
    await directory.createGroup({ groupId: "old", memberUserIds: ["alice"] });
    await directory.dismissGroup({ groupId: "old" });
    const res = await server.marks.updateConversations({
      updates: [
        star("alice", "bob", ConversationType.DIRECT),
        star("zed", "bob", ConversationType.DIRECT),
        star("alice", "zed", ConversationType.DIRECT),
        star("alice", "none", ConversationType.GROUP),
        star("alice", "old", ConversationType.GROUP),
        star("bob", "g", ConversationType.GROUP),
        star("alice", "g", ConversationType.GROUP),
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
  });

  it("strict mode off by default: any well-formed ID is accepted, the directory still answers", async () => {
    const { server, directory } = await start();
    const res = await server.marks.updateConversations({
      updates: [star("zed", "nobody", ConversationType.DIRECT), star("zed", "nogroup", ConversationType.GROUP)],
    });
    expect(res.results.map((r) => r.status?.code ?? 0)).toEqual([0, 0]);
    const err = await directory.dismissGroup({ groupId: "nogroup" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err && Code[err.code]).toBe(Code[Code.NotFound]);
  });

  it("keeps the directory across a restart (same SQLite file as the marks)", async () => {
    const first = await startTestServer({ CONVMARK_STRICT_DIRECTORY: "1" });
    const dir1 = createClient(DirectoryService, createConnectTransport({ baseUrl: first.url, httpVersion: "1.1" }));
    await dir1.registerUsers({ userIds: ["alice", "bob"] });
    await first.close({ keepData: true });
    const second = await startTestServer({ CONVMARK_STRICT_DIRECTORY: "1" }, { dataDir: first.dataDir });
    servers.push(second);
    const res = await second.marks.updateConversations({ updates: [star("alice", "bob", ConversationType.DIRECT)] });
    expect(res.results[0]?.status?.code ?? 0).toBe(0);
  });

  it("refuses an invalid CONVMARK_STRICT_DIRECTORY at start with a ConfigError", async () => {
    await expect(startConvmark({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", CONVMARK_STRICT_DIRECTORY: "yes" })).rejects.toBeInstanceOf(ConfigError);
  });
});
