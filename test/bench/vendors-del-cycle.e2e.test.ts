// The bench's Tencent del_contact_group row against the real server: every request of the cycle
// (create, then delete, per connection) succeeds, and a delete really removes its group.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareVendor, VENDOR_SERVER_ENV, VENDORS } from "../../bench/vendors.js";
import { startTestServer, type TestServer } from "../support/harness.js";

describe("bench row tencent_del_contact_group", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(VENDOR_SERVER_ENV);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("is a row, prepares against the server, and alternates create/delete per connection", async () => {
    expect(VENDORS).toContain("tencent_del_contact_group");
    const p = await prepareVendor("tencent_del_contact_group", server.url);
    if (!p.ok) throw new Error(p.reason);
    const { request, verify } = p.route;
    const connections = [{}, {}];
    const sent: { api: string; body: Record<string, unknown> }[] = [];
    for (let i = 0; i < 3; i++) {
      for (const ctx of connections) {
        const spec = request.setupRequest!({ ...request }, ctx);
        const res = await fetch(server.url + spec.path!, { method: "POST", headers: spec.headers ?? {}, body: spec.body as string });
        const text = await res.text();
        expect(res.status).toBe(200);
        expect(verify(text), text).toBe(true);
        sent.push({ api: spec.path!.split("?")[0]!, body: JSON.parse(spec.body as string) as Record<string, unknown> });
      }
    }
    expect(sent.map((s) => s.api.split("/").pop())).toEqual(["create_contact_group", "create_contact_group", "del_contact_group", "del_contact_group", "create_contact_group", "create_contact_group"]);
    // The documented del body: From_Account and the list of group names.
    expect(Object.keys(sent[2]!.body)).toEqual(["From_Account", "GroupName"]);
    // After a full cycle the owner has no group left: delete it once more and Tencent says it is gone (51009).
    const again = request.setupRequest!({ ...request }, connections[0]!);
    const res = await fetch(server.url + again.path!, { method: "POST", headers: again.headers ?? {}, body: again.body as string });
    expect(verify(await res.text())).toBe(true);
    const gone = await fetch(server.url + again.path!, { method: "POST", headers: again.headers ?? {}, body: again.body as string });
    expect(await gone.json()).toMatchObject({ ActionStatus: "FAIL", ErrorCode: 51009 });
  });
});
