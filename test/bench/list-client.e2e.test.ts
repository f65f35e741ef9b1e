/** bench/list-client.ts: the List row's client process, against the real server on loopback. */
import { describe, expect, it } from "vitest";
import { runListClient } from "../../bench/list-client.js";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer } from "../support/harness.js";

describe("the List row's client process", () => {
  it("measures one call at a time with the bench's response check, and reports a wrong page as errors", async () => {
    const server = await startTestServer();
    try {
      const key = (id: string) => ({ ownerUserId: "lister", type: ConversationType.DIRECT, conversationId: id });
      await server.marks.updateConversations({ updates: ["a", "b", "c"].map((id) => ({ key: key(id), setMarks: [5] })) });
      await server.marks.updateConversations({ updates: [{ key: key("d"), setMarks: [6] }] });
      const ok = await runListClient({ port: server.port, owner: "lister", mark: 5, pageSize: 3, warmupSeconds: 0.2, seconds: 0.5 });
      expect(ok.slice.errors).toBe(0);
      expect(ok.slice.units).toBe(ok.slice.requests);
      expect(ok.slice.requests).toBeGreaterThan(10);
      expect(ok.slice.latencies.count).toBe(ok.slice.requests);
      expect(ok.slice.latencies.percentile(50)).toBeGreaterThan(0);
      expect(ok.stalls.loopDelayP99Ms).toBeGreaterThan(0);
      // Three conversations carry mark 5: a page of 4 is what the check expects, not what the server has.
      const wrong = await runListClient({ port: server.port, owner: "lister", mark: 5, pageSize: 4, warmupSeconds: 0.1, seconds: 0.3 });
      expect(wrong.slice.units).toBe(0);
      expect(wrong.slice.errors).toBeGreaterThan(0);
      expect(wrong.slice.errors).toBe(wrong.slice.requests);
      expect(wrong.slice.firstError).toContain("list returned 3 conversations, expected 4");
    } finally {
      await server.close();
    }
  }, 30_000);

  it("fails with the child's exit code when the server is not there", async () => {
    await expect(runListClient({ port: 1, owner: "x", mark: 1, pageSize: 1, warmupSeconds: 0.1, seconds: 0.1 })).rejects.toThrow(/exited with code 1: Error: Failed to connect before the deadline/);
  }, 30_000);
});
