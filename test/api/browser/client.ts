/** Runs in headless Chromium: calls convmark cross-origin with connect-web (Connect JSON over fetch). */
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { MarkService } from "../../../gen/convmark/v1/mark_service_pb.js";

export interface BrowserResult {
  updated: number;
  getViaHttpGet: number[];
  watchFirstCursor: boolean;
  watchLive: string[];
  otherUserCode: string;
  noTokenCode: string;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (e) {
    return String(ConnectError.from(e).code);
  }
}

async function run(baseUrl: string, token: string, owner: string): Promise<BrowserResult> {
  const headers = { authorization: `Bearer ${token}` };
  const transport = createConnectTransport({ baseUrl, useHttpGet: true });
  const marks = createClient(MarkService, transport);
  const key = (id: string) => ({ ownerUserId: owner, type: 1, conversationId: id });
  const up = await marks.updateConversations({ updates: [{ key: key("b1"), setMarks: [1, 3] }] }, { headers });
  // GetConversation is NO_SIDE_EFFECTS, so connect-web sends it as an HTTP GET.
  const got = await marks.getConversation({ key: key("b1") }, { headers });
  // WatchConversations over fetch streaming: the first message carries the cursor, then a live change.
  const ctrl = new AbortController();
  const stream = marks.watchConversations({ ownerUserId: owner }, { headers, signal: ctrl.signal })[Symbol.asyncIterator]();
  const first = await stream.next();
  const live: string[] = [];
  await marks.updateConversations({ updates: [{ key: key("b2"), setMarks: [2] }] }, { headers });
  while (live.length === 0) {
    const r = await stream.next();
    if (r.done) break;
    for (const c of r.value.changes) live.push(c.conversation!.key!.conversationId);
  }
  ctrl.abort();
  return {
    updated: up.results.filter((r) => r.status!.code === 0).length,
    getViaHttpGet: got.conversation!.marks,
    watchFirstCursor: !first.done && first.value.cursor.length > 0,
    watchLive: live,
    otherUserCode: await code(marks.getConversation({ key: { ownerUserId: `${owner}-other`, type: 1, conversationId: "b1" } }, { headers })),
    noTokenCode: await code(marks.getConversation({ key: key("b1") })),
  };
}

(globalThis as unknown as { convmarkTest: typeof run }).convmarkTest = run;
