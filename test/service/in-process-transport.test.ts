import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ConversationType, MarkService, ResultView } from "../../gen/convmark/v1/mark_service_pb.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { createInProcessTransport } from "../../src/service/in-process-transport.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";

const key = { ownerUserId: "u", type: ConversationType.DIRECT, conversationId: "p" };

function setup(interceptors: Interceptor[] = []) {
  const store = openSqliteStore({ path: ":memory:", limits: { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 } });
  const impl = createMarkService({ store, limits: DEFAULT_LIMITS });
  return createClient(MarkService, createInProcessTransport(MarkService, impl, interceptors));
}

describe("in-process transport", () => {
  it("runs every interceptor, outermost first, around the implementation", async () => {
    const seen: string[] = [];
    const tag =
      (name: string): Interceptor =>
      (next) =>
      async (req) => {
        seen.push(`${name}>${req.method.name}`);
        const res = await next(req);
        seen.push(`<${name}`);
        return res;
      };
    const client = setup([tag("outer"), tag("inner")]);
    const res = await client.updateConversations({ updates: [{ key, setMarks: [3] }] });
    expect(res.results[0]?.conversation?.marks).toEqual([3]);
    expect(seen).toEqual(["outer>UpdateConversations", "inner>UpdateConversations", "<inner", "<outer"]);
  });

  it("surfaces the service's errors as ConnectErrors with their codes", async () => {
    const client = setup();
    const err = await client.getConversation({ key }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
  });

  it("RESULT_VIEW_STATUS leaves the conversation out of each result; the default fills it in", async () => {
    const client = setup();
    const lean = await client.updateConversations({ updates: [{ key, setMarks: [1] }, { key: { ...key, conversationId: "" } }], resultView: ResultView.STATUS });
    expect(lean.results.map((r) => [r.status?.code, r.changed, r.conversation])).toEqual([
      [0, true, undefined],
      [Code.InvalidArgument, false, undefined],
    ]);
    const full = await client.updateConversations({ updates: [{ key, setMarks: [2] }] });
    expect(full.results[0]?.conversation?.marks).toEqual([1, 2]);
    expect(full.results[0]?.conversation?.version).toBe(2n);
  });
});
