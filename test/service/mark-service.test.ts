import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { anyUnpack, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  ConversationSchema,
  ConversationType,
  MarkService,
  type ReceiveOption,
  UpdateConversationsResponseSchema,
  type Conversation,
  type ConversationKeySchema,
  type ConversationUpdateSchema,
  type UpdateResult,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { ConvKey } from "../../src/domain/conversation.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/domain/limits.js";
import { failure } from "../../src/domain/validate.js";
import { errorInfoOf, reasonOf } from "../../src/service/convert.js";
import { createMarkService, type KeyGuard } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { MarkStore } from "../../src/store/store.js";

type KeyInit = MessageInitShape<typeof ConversationKeySchema>;
type UpdateInit = MessageInitShape<typeof ConversationUpdateSchema>;
type MarkClient = Client<typeof MarkService>;

const DIRECT = ConversationType.DIRECT;
const GROUP = ConversationType.GROUP;
const BIT64 = 9223372036854775808n;
const T0 = 1_700_000_000_000;

let clock = T0;
const stores: MarkStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

function setup(over: Partial<Limits> = {}, opts: { guard?: KeyGuard; json?: boolean } = {}): MarkClient {
  const limits: Limits = { ...DEFAULT_LIMITS, ...over };
  const store = openSqliteStore({ path: ":memory:", limits, now: () => clock });
  stores.push(store);
  const transport = createRouterTransport(
    (router) => router.service(MarkService, createMarkService({ store, limits, ...(opts.guard ? { guard: opts.guard } : {}) })),
    opts.json ? { transport: { useBinaryFormat: false } } : {},
  );
  return createClient(MarkService, transport);
}

const k = (owner: string, conversationId: string, type: ConversationType = DIRECT) => ({ ownerUserId: owner, type, conversationId });

async function expectCode(p: Promise<unknown>, code: Code): Promise<ConnectError> {
  let result: unknown;
  try {
    result = await p;
  } catch (e) {
    const err = ConnectError.from(e);
    expect(err.code, `expected ${Code[code]}, got ${Code[err.code]}: ${err.rawMessage}`).toBe(code);
    return err;
  }
  throw new Error(`expected ${Code[code]}, got success: ${JSON.stringify(result, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
}

function okConv(r: UpdateResult | undefined): Conversation {
  expect(r, "missing result").toBeDefined();
  expect(r!.status?.code, `expected OK, got ${r!.status?.code}: ${r!.status?.message}`).toBe(0);
  expect(r!.status?.details ?? []).toHaveLength(0);
  expect(r!.conversation).toBeDefined();
  return r!.conversation!;
}

function expectFailed(r: UpdateResult | undefined, code: Code, reason?: string): void {
  expect(r, "missing result").toBeDefined();
  expect(r!.status?.code, `expected ${Code[code]}, got ${r!.status?.code}: ${r!.status?.message}`).toBe(code);
  expect(r!.status?.message).toBeTruthy();
  expect(r!.conversation).toBeUndefined();
  expect(r!.changed).toBe(false);
  // Invalid input carries FIELD_INVALID and names the field (ErrorInfo.metadata.field).
  if (reason === undefined && code === Code.InvalidArgument) {
    const info = errorInfoOf(r!.status);
    expect(info?.reason).toBe("FIELD_INVALID");
    expect(info?.field).toBeTruthy();
  } else {
    expect(reasonOf(r!.status)).toBe(reason);
  }
}

const ids = (cs: readonly Conversation[]) => cs.map((c) => c.key?.conversationId);

describe("UpdateConversations: per-item validation", () => {
  it("fails each invalid item with INVALID_ARGUMENT while the valid items of the same request apply", async () => {
    const c = setup();
    const invalid: [string, UpdateInit][] = [
      ["missing key", { setMarks: [1] }],
      ["empty owner", { key: k("", "x"), setMarks: [1] }],
      ["empty conversation id", { key: k("u", ""), setMarks: [1] }],
      ["owner over 256 bytes (multi-byte)", { key: k("中".repeat(85) + "éé", "x"), setMarks: [1] }],
      ["conversation id over 256 bytes (emoji)", { key: k("u", "😀".repeat(64) + "a"), setMarks: [1] }],
      ["type unspecified", { key: k("u", "t0", ConversationType.UNSPECIFIED), setMarks: [1] }],
      ["type 3", { key: k("u", "t3", 3 as ConversationType), setMarks: [1] }],
      ["mark 0", { key: k("u", "m0"), setMarks: [0] }],
      ["mark 65", { key: k("u", "m65"), setMarks: [1, 65] }],
      ["clear mark 65", { key: k("u", "cm65"), clearMarks: [65] }],
      ["mark in set and clear", { key: k("u", "both"), setMarks: [3], clearMarks: [3] }],
      ["custom mark 257 bytes", { key: k("u", "cm"), customMark: "é" + "中".repeat(85) }],
      ["empty label", { key: k("u", "l0"), addLabels: [""] }],
      ["label 256 bytes", { key: k("u", "l256"), addLabels: ["é".repeat(128)] }],
      ["label in add and remove", { key: k("u", "lab"), addLabels: ["a"], removeLabels: ["a"] }],
      ["33 add_labels", { key: k("u", "l33"), addLabels: Array.from({ length: 33 }, (_, i) => `l${i}`) }],
      ["receive_option 0", { key: k("u", "r0"), settings: { receiveOption: 0 } }],
      ["receive_option 4", { key: k("u", "r4"), settings: { receiveOption: 4 as ReceiveOption } }],
      ["negative burn duration", { key: k("u", "burn"), settings: { burnDurationSeconds: -1 } }],
      ["attached_info 4097 bytes", { key: k("u", "ai"), settings: { attachedInfo: "中".repeat(1365) + "é" } }],
      ["ex 4097 bytes", { key: k("u", "ex"), settings: { ex: "😀".repeat(1024) + "a" } }],
    ];
    const valid: UpdateInit[] = [
      { key: k("u", "ok1"), setMarks: [1, 64], customMark: "😀".repeat(64) },
      { key: k("u", "ok2", GROUP), addLabels: ["中".repeat(85), "b", "a"], settings: { pinned: true } },
      { key: k("😀".repeat(64), "中".repeat(85) + "a"), setMarks: [2], settings: { attachedInfo: "中".repeat(1365) + "a", burnDurationSeconds: 0 } },
    ];
    // Interleave: valid items at positions 0, 11 and the end.
    const updates: UpdateInit[] = [valid[0]!, ...invalid.slice(0, 10).map(([, u]) => u), valid[1]!, ...invalid.slice(10).map(([, u]) => u), valid[2]!];
    const res = await c.updateConversations({ updates });
    expect(res.results).toHaveLength(updates.length);

    const a = okConv(res.results[0]);
    expect(a.marks).toEqual([1, 64]);
    expect(a.markBits).toBe(BIT64 | 1n);
    expect(a.customMark).toBe("😀".repeat(64));
    expect(res.results[0]!.changed).toBe(true);
    const b = okConv(res.results[11]);
    expect(b.labels).toEqual(["a", "b", "中".repeat(85)]);
    expect(b.settings?.pinned).toBe(true);
    const last = okConv(res.results[updates.length - 1]);
    expect(last.marks).toEqual([2]);

    invalid.slice(0, 10).forEach(([what], i) => {
      const r = res.results[1 + i];
      expect(r?.status?.code, what).toBe(Code.InvalidArgument);
      expectFailed(r, Code.InvalidArgument);
    });
    invalid.slice(10).forEach(([what], i) => {
      const r = res.results[12 + i];
      expect(r?.status?.code, what).toBe(Code.InvalidArgument);
      expectFailed(r, Code.InvalidArgument);
    });

    // Valid items are stored; invalid ones are not.
    const got = await c.batchGetConversations({ keys: [k("u", "ok1"), k("u", "ok2", GROUP), k("😀".repeat(64), "中".repeat(85) + "a")] });
    expect(got.conversations.map((x) => x.version)).toEqual([1n, 1n, 1n]);
    expect(got.conversations[0]!.markBits).toBe(BIT64 | 1n);
    expect(got.conversations[1]!.labels).toEqual(["a", "b", "中".repeat(85)]);
    expect(got.conversations[2]!.settings?.attachedInfo).toBe("中".repeat(1365) + "a");
    expect(got.conversations[2]!.settings?.burnDurationSeconds).toBe(0);
    const list = await c.listConversations({ ownerUserId: "u", pageSize: 1000 });
    expect(ids(list.conversations).sort()).toEqual(["ok1", "ok2"]);
    for (const id of ["m0", "m65", "both", "cm", "l0", "l256", "lab", "l33", "r0", "r4", "burn", "ai", "ex"]) {
      await expectCode(c.getConversation({ key: k("u", id) }), Code.NotFound);
    }
  });

  it("a request where every item is invalid still answers OK with per-item failures", async () => {
    const c = setup();
    const res = await c.updateConversations({ updates: [{ key: k("u", "a"), setMarks: [0] }, { setMarks: [1] }] });
    expect(res.results).toHaveLength(2);
    expectFailed(res.results[0], Code.InvalidArgument);
    expectFailed(res.results[1], Code.InvalidArgument);
  });

  it("returns results in request order, also for repeated keys", async () => {
    const c = setup();
    const keys = ["c5", "c1", "c4", "c2", "c3"];
    const res = await c.updateConversations({
      updates: [
        ...keys.map((id, i) => ({ key: k("o", id), setMarks: [i + 1] })),
        { key: k("o", "c1"), setMarks: [10] },
        { key: k("o", "c1", GROUP), setMarks: [11] },
      ],
    });
    const convs = res.results.map(okConv);
    expect(convs.map((x) => x.key?.conversationId)).toEqual([...keys, "c1", "c1"]);
    expect(convs.map((x) => x.key?.type)).toEqual([DIRECT, DIRECT, DIRECT, DIRECT, DIRECT, DIRECT, GROUP]);
    expect(convs.map((x) => x.marks)).toEqual([[1], [2], [3], [4], [5], [2, 10], [11]]);
    expect(convs.map((x) => x.version)).toEqual([1n, 1n, 1n, 1n, 1n, 2n, 1n]);
    expect(res.results.map((r) => r.changed)).toEqual([true, true, true, true, true, true, true]);
  });

  it("reports changed=false on a no-op, without a version bump or a new update time", async () => {
    const c = setup();
    clock = T0;
    const first = okConv(
      (await c.updateConversations({ updates: [{ key: k("o", "c"), setMarks: [1, 64], customMark: "m", addLabels: ["b", "a"], settings: { pinned: false, ex: "" } }] })).results[0],
    );
    expect(first.version).toBe(1n);
    expect(timestampMs(first.updateTime!)).toBe(T0);
    clock = T0 + 60_000;
    const res = await c.updateConversations({
      updates: [
        { key: k("o", "c"), setMarks: [64], clearMarks: [2] },
        { key: k("o", "c"), customMark: "m", addLabels: ["a", "b"], removeLabels: ["zz"] },
        { key: k("o", "c"), settings: { pinned: false, ex: "" } },
        { key: k("o", "c") },
      ],
    });
    for (const r of res.results) {
      const conv = okConv(r);
      expect(r.changed).toBe(false);
      expect(conv.version).toBe(1n);
      expect(timestampMs(conv.updateTime!)).toBe(T0);
      expect(conv.marks).toEqual([1, 64]);
      expect(conv.labels).toEqual(["a", "b"]);
    }
    const got = (await c.getConversation({ key: k("o", "c") })).conversation!;
    expect(got.version).toBe(1n);
    expect(timestampMs(got.updateTime!)).toBe(T0);
    // A real change afterwards bumps by one and takes the new time.
    const next = (await c.updateConversations({ updates: [{ key: k("o", "c"), settings: { pinned: true } }] })).results[0]!;
    expect(next.changed).toBe(true);
    expect(okConv(next).version).toBe(2n);
    expect(timestampMs(okConv(next).updateTime!)).toBe(T0 + 60_000);
  });

  it("a no-op on a never-written conversation writes nothing", async () => {
    const c = setup();
    const r = (await c.updateConversations({ updates: [{ key: k("o", "never"), clearMarks: [1] }] })).results[0]!;
    expect(r.changed).toBe(false);
    expect(okConv(r).version).toBe(0n);
    expect(okConv(r).updateTime).toBeUndefined();
    await expectCode(c.getConversation({ key: k("o", "never") }), Code.NotFound);
  });

  it("refuses an empty request with INVALID_ARGUMENT", async () => {
    const c = setup();
    await expectCode(c.updateConversations({ updates: [] }), Code.InvalidArgument);
    await expectCode(c.updateConversations({}), Code.InvalidArgument);
  });

  it("keeps settings presence: absent fields stay absent, false is kept", async () => {
    const c = setup();
    await c.updateConversations({ updates: [{ key: k("o", "s"), settings: { pinned: false, receiveOption: 2 } }] });
    const r = (await c.updateConversations({ updates: [{ key: k("o", "s"), settings: { ex: "x" } }] })).results[0]!;
    const s = okConv(r).settings!;
    expect(s.pinned).toBe(false);
    expect(s.receiveOption).toBe(2);
    expect(s.ex).toBe("x");
    expect(s.privateChat).toBeUndefined();
    expect(s.burnDurationSeconds).toBeUndefined();
    expect(s.attachedInfo).toBeUndefined();
    const json = toJson(ConversationSchema, okConv(r)) as { settings: Record<string, unknown> };
    expect(json.settings).toEqual({ pinned: false, receiveOption: "RECEIVE_OPTION_DO_NOT_RECEIVE", ex: "x" });
  });
});

describe("UpdateConversations: limits", () => {
  it("fails an update past maxMarkedPerOwner with RESOURCE_EXHAUSTED and ErrorInfo OWNER_MARKED_LIMIT", async () => {
    const c = setup({ maxMarkedPerOwner: 2 });
    const res = await c.updateConversations({
      updates: [
        { key: k("o", "a"), setMarks: [1] },
        { key: k("o", "b"), customMark: "x" },
        { key: k("o", "c"), addLabels: ["l"] },
        { key: k("o", "d"), setMarks: [64] },
        { key: k("other", "c"), setMarks: [1] },
        { key: k("o", "s"), settings: { pinned: true } },
        { key: k("o", "a"), setMarks: [2] },
      ],
    });
    okConv(res.results[0]);
    okConv(res.results[1]);
    expectFailed(res.results[2], Code.ResourceExhausted, "OWNER_MARKED_LIMIT");
    expectFailed(res.results[3], Code.ResourceExhausted, "OWNER_MARKED_LIMIT");
    const info = anyUnpack(res.results[3]!.status!.details[0]!, ErrorInfoSchema);
    expect(info?.reason).toBe("OWNER_MARKED_LIMIT");
    expect(info?.domain).toBe("convmark");
    // Other owners, unmarked conversations and already-marked conversations are unaffected.
    okConv(res.results[4]);
    expect(okConv(res.results[5]).settings?.pinned).toBe(true);
    expect(okConv(res.results[6]).marks).toEqual([1, 2]);
    await expectCode(c.getConversation({ key: k("o", "c") }), Code.NotFound);
    await expectCode(c.getConversation({ key: k("o", "d") }), Code.NotFound);
    // Unmarking one frees a slot.
    await c.updateConversations({ updates: [{ key: k("o", "b"), customMark: "" }] });
    const again = await c.updateConversations({ updates: [{ key: k("o", "c"), addLabels: ["l"] }, { key: k("o", "d"), setMarks: [64] }] });
    expect(okConv(again.results[0]).labels).toEqual(["l"]);
    expectFailed(again.results[1], Code.ResourceExhausted, "OWNER_MARKED_LIMIT");
  });

  it("fails an update that would exceed maxLabelsPerConversation with RESOURCE_EXHAUSTED (LABEL_LIMIT)", async () => {
    const c = setup({ maxLabelsPerConversation: 2 });
    okConv((await c.updateConversations({ updates: [{ key: k("o", "c"), addLabels: ["a", "b"] }] })).results[0]);
    const res = await c.updateConversations({ updates: [{ key: k("o", "c"), addLabels: ["c"] }, { key: k("o", "c"), addLabels: ["c"], removeLabels: ["a"] }] });
    expectFailed(res.results[0], Code.ResourceExhausted, "LABEL_LIMIT");
    expect(okConv(res.results[1]).labels).toEqual(["b", "c"]);
    // Too many distinct add_labels in one update is INVALID_ARGUMENT, before the store.
    const bad = await c.updateConversations({ updates: [{ key: k("o", "d"), addLabels: ["x", "y", "z"] }] });
    expectFailed(bad.results[0], Code.InvalidArgument);
  });

  // BUG (src/store/sqlite-store.ts applyOne): the label cap is checked on the resulting label count even
  // when the update does not add labels, so a conversation already above maxLabelsPerConversation
  // (the limit was lowered in configuration) can no longer be changed at all: setting a mark, or even
  // removing one of its labels, fails RESOURCE_EXHAUSTED/LABEL_LIMIT. The store contract says an update
  // fails when it "would take a conversation past" the cap. Fix: refuse only when the update grows the
  // label set beyond the cap, e.g. `next.labels.length > maxLabelsPerConversation &&
  // next.labels.length > (cur?.labels.length ?? 0)` (the MongoDB update documents need the same rule).
  it("a conversation already above a lowered label cap can still be changed without adding labels", async () => {
    const dir = mkdtempSync(join(tmpdir(), "convmark-svc-"));
    try {
      const path = join(dir, "labels.db");
      const wide = openSqliteStore({ path, limits: { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 } });
      await wide.applyUpdates([
        { key: { owner: "o", type: 1, conversationId: "c" }, setMask: 0n, clearMask: 0n, addLabels: ["a", "b", "c", "d"], removeLabels: [], settings: {} },
      ]);
      await wide.close();
      const limits: Limits = { ...DEFAULT_LIMITS, maxLabelsPerConversation: 2 };
      const store = openSqliteStore({ path, limits });
      stores.push(store);
      const c = createClient(MarkService, createRouterTransport((router) => router.service(MarkService, createMarkService({ store, limits }))));
      const res = await c.updateConversations({
        updates: [
          { key: k("o", "c"), setMarks: [1] },
          { key: k("o", "c"), removeLabels: ["a"] },
          { key: k("o", "c"), addLabels: ["e"] },
        ],
      });
      expect(okConv(res.results[0]).marks).toEqual([1]);
      expect(okConv(res.results[1]).labels).toEqual(["b", "c", "d"]);
      expectFailed(res.results[2], Code.ResourceExhausted, "LABEL_LIMIT");
    } finally {
      await Promise.all(stores.splice(0).map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("accepts exactly 20,000 updates (100 owners x 200 conversations) and applies them all", async () => {
    expect(DEFAULT_LIMITS.maxUpdatesPerRequest).toBe(20_000);
    const c = setup();
    const updates: UpdateInit[] = [];
    for (let o = 0; o < 100; o++) {
      for (let i = 0; i < 200; i++) updates.push({ key: k(`owner${o}`, `conv${i}`), setMarks: [(i % 64) + 1] });
    }
    expect(updates).toHaveLength(20_000);
    const res = await c.updateConversations({ updates });
    expect(res.results).toHaveLength(20_000);
    const bad = res.results.findIndex((r) => r.status?.code !== 0 || !r.changed || r.conversation?.version !== 1n);
    expect(bad).toBe(-1);
    expect(res.results[19_999]!.conversation?.key?.ownerUserId).toBe("owner99");
    expect(res.results[19_999]!.conversation?.key?.conversationId).toBe("conv199");
    for (const owner of ["owner0", "owner57", "owner99"]) {
      const list = await c.listConversations({ ownerUserId: owner, pageSize: 1000 });
      expect(list.conversations).toHaveLength(200);
      expect(list.nextPageToken).toBe("");
    }
    const one = (await c.getConversation({ key: k("owner42", "conv63") })).conversation!;
    expect(one.marks).toEqual([64]);
    expect(one.markBits).toBe(BIT64);
  });

  it("refuses 20,001 updates with INVALID_ARGUMENT and applies nothing", async () => {
    const c = setup();
    const updates: UpdateInit[] = Array.from({ length: 20_001 }, (_, i) => ({ key: k(`owner${i % 100}`, `conv${Math.floor(i / 100)}`), setMarks: [1] }));
    await expectCode(c.updateConversations({ updates }), Code.InvalidArgument);
    for (const owner of ["owner0", "owner1", "owner99"]) {
      expect((await c.listConversations({ ownerUserId: owner })).conversations).toHaveLength(0);
    }
    await expectCode(c.getConversation({ key: k("owner0", "conv0") }), Code.NotFound);
    await expectCode(c.getConversation({ key: k("owner0", "conv200") }), Code.NotFound);
  });

  it("follows a small configured maxUpdatesPerRequest", async () => {
    const c = setup({ maxUpdatesPerRequest: 3 });
    const mk = (n: number, id: string) => Array.from({ length: n }, (_, i) => ({ key: k("o", `${id}${i}`), setMarks: [1] }));
    await expectCode(c.updateConversations({ updates: mk(4, "x") }), Code.InvalidArgument);
    expect((await c.listConversations({ ownerUserId: "o" })).conversations).toHaveLength(0);
    const res = await c.updateConversations({ updates: mk(3, "y") });
    expect(res.results.map((r) => r.status?.code)).toEqual([0, 0, 0]);
    expect(ids((await c.listConversations({ ownerUserId: "o" })).conversations)).toEqual(["y2", "y1", "y0"]);
    // The limit counts items, invalid ones included.
    await expectCode(c.updateConversations({ updates: [...mk(3, "z"), { setMarks: [1] }] }), Code.InvalidArgument);
  });
});

describe("GetConversation", () => {
  it("NOT_FOUND for a never-written key", async () => {
    const c = setup();
    await c.updateConversations({ updates: [{ key: k("o", "c"), setMarks: [1] }] });
    await expectCode(c.getConversation({ key: k("o", "other") }), Code.NotFound);
    await expectCode(c.getConversation({ key: k("o", "c", GROUP) }), Code.NotFound);
    await expectCode(c.getConversation({ key: k("x", "c") }), Code.NotFound);
  });

  it("INVALID_ARGUMENT for a bad key", async () => {
    const c = setup();
    await expectCode(c.getConversation({}), Code.InvalidArgument);
    await expectCode(c.getConversation({ key: k("", "c") }), Code.InvalidArgument);
    await expectCode(c.getConversation({ key: k("o", "") }), Code.InvalidArgument);
    await expectCode(c.getConversation({ key: k("o", "c", ConversationType.UNSPECIFIED) }), Code.InvalidArgument);
    await expectCode(c.getConversation({ key: k("o", "c", 7 as ConversationType) }), Code.InvalidArgument);
    await expectCode(c.getConversation({ key: k("o", "中".repeat(86)) }), Code.InvalidArgument);
  });

  it("returns the stored state", async () => {
    const c = setup();
    clock = T0 + 123;
    await c.updateConversations({ updates: [{ key: k("o", "g", GROUP), setMarks: [4, 1], customMark: "cm", addLabels: ["z", "a"], settings: { receiveOption: 3, burnDurationSeconds: 9 } }] });
    const got = (await c.getConversation({ key: k("o", "g", GROUP) })).conversation!;
    expect(got.key).toMatchObject({ ownerUserId: "o", type: GROUP, conversationId: "g" });
    expect(got.marks).toEqual([1, 4]);
    expect(got.markBits).toBe(9n);
    expect(got.customMark).toBe("cm");
    expect(got.labels).toEqual(["a", "z"]);
    expect(got.settings?.receiveOption).toBe(3);
    expect(got.settings?.burnDurationSeconds).toBe(9);
    expect(got.settings?.pinned).toBeUndefined();
    expect(got.version).toBe(1n);
    expect(timestampMs(got.updateTime!)).toBe(T0 + 123);
  });
});

describe("BatchGetConversations", () => {
  it("answers in request order, missing keys empty with version 0", async () => {
    const c = setup();
    await c.updateConversations({ updates: [{ key: k("o", "a"), setMarks: [2] }, { key: k("o", "b", GROUP), customMark: "b" }] });
    const keys: KeyInit[] = [k("o", "missing1"), k("o", "b", GROUP), k("o", "a"), k("o", "b"), k("p", "a"), k("o", "a")];
    const res = await c.batchGetConversations({ keys });
    expect(res.conversations).toHaveLength(6);
    res.conversations.forEach((conv, i) => {
      expect(conv.key).toMatchObject(keys[i]!);
    });
    expect(res.conversations.map((x) => x.version)).toEqual([0n, 1n, 1n, 0n, 0n, 1n]);
    expect(res.conversations[1]!.customMark).toBe("b");
    expect(res.conversations[2]!.marks).toEqual([2]);
    for (const i of [0, 3, 4]) {
      const m = res.conversations[i]!;
      expect(m.marks).toEqual([]);
      expect(m.markBits).toBe(0n);
      expect(m.customMark).toBe("");
      expect(m.labels).toEqual([]);
      expect(m.updateTime).toBeUndefined();
    }
    const json = toJson(ConversationSchema, res.conversations[0]!) as Record<string, unknown>;
    expect(json.version ?? "0").toBe("0");
  });

  it("enforces the key limit", async () => {
    const c = setup({ maxKeysPerBatchGet: 3 });
    const keys = (n: number) => Array.from({ length: n }, (_, i) => k("o", `c${i}`));
    expect((await c.batchGetConversations({ keys: keys(3) })).conversations).toHaveLength(3);
    await expectCode(c.batchGetConversations({ keys: keys(4) }), Code.InvalidArgument);
  });

  it("enforces the default key limit of 1000", async () => {
    const c = setup();
    const keys = (n: number) => Array.from({ length: n }, (_, i) => k("o", `c${i}`));
    expect((await c.batchGetConversations({ keys: keys(1000) })).conversations).toHaveLength(1000);
    await expectCode(c.batchGetConversations({ keys: keys(1001) }), Code.InvalidArgument);
  });

  it("refuses a bad key anywhere in the batch", async () => {
    const c = setup();
    await expectCode(c.batchGetConversations({ keys: [k("o", "a"), k("o", "")] }), Code.InvalidArgument);
    await expectCode(c.batchGetConversations({ keys: [k("o", "a", ConversationType.UNSPECIFIED)] }), Code.InvalidArgument);
  });

  it("an empty batch answers empty", async () => {
    const c = setup();
    expect((await c.batchGetConversations({ keys: [] })).conversations).toEqual([]);
  });
});

describe("ListConversations", () => {
  async function seed(c: MarkClient, owner: string, n: number) {
    for (let i = 0; i < n; i++) {
      clock = T0 + i * 1000;
      await c.updateConversations({ updates: [{ key: k(owner, `c${i}`), setMarks: [1] }] });
    }
  }

  it("lists most recently changed first; a no-op does not move a conversation", async () => {
    const c = setup();
    await seed(c, "o", 3); // c0, c1, c2
    expect(ids((await c.listConversations({ ownerUserId: "o" })).conversations)).toEqual(["c2", "c1", "c0"]);
    await c.updateConversations({ updates: [{ key: k("o", "c0"), setMarks: [2] }] });
    expect(ids((await c.listConversations({ ownerUserId: "o" })).conversations)).toEqual(["c0", "c2", "c1"]);
    await c.updateConversations({ updates: [{ key: k("o", "c1"), setMarks: [1] }] }); // no-op
    expect(ids((await c.listConversations({ ownerUserId: "o" })).conversations)).toEqual(["c0", "c2", "c1"]);
    // Another owner's conversations are not listed.
    await c.updateConversations({ updates: [{ key: k("p", "c9"), setMarks: [1] }] });
    expect(ids((await c.listConversations({ ownerUserId: "o" })).conversations)).toEqual(["c0", "c2", "c1"]);
    expect(ids((await c.listConversations({ ownerUserId: "nobody" })).conversations)).toEqual([]);
  });

  it("pages with page_size 2 through all pages", async () => {
    const c = setup();
    await seed(c, "o", 7);
    const seen: string[][] = [];
    let token = "";
    for (let guard = 0; guard < 10; guard++) {
      const page = await c.listConversations({ ownerUserId: "o", pageSize: 2, pageToken: token });
      seen.push(ids(page.conversations) as string[]);
      token = page.nextPageToken;
      if (!token) break;
    }
    expect(seen).toEqual([["c6", "c5"], ["c4", "c3"], ["c2", "c1"], ["c0"]]);
  });

  it("an exact multiple of the page size ends without an empty extra page", async () => {
    const c = setup();
    await seed(c, "o", 4);
    const p1 = await c.listConversations({ ownerUserId: "o", pageSize: 2 });
    expect(p1.nextPageToken).not.toBe("");
    const p2 = await c.listConversations({ ownerUserId: "o", pageSize: 2, pageToken: p1.nextPageToken });
    expect(ids(p2.conversations)).toEqual(["c1", "c0"]);
    expect(p2.nextPageToken).toBe("");
  });

  it("a change between pages does not repeat or skip the unchanged ones", async () => {
    const c = setup();
    await seed(c, "o", 5);
    const p1 = await c.listConversations({ ownerUserId: "o", pageSize: 2 });
    expect(ids(p1.conversations)).toEqual(["c4", "c3"]);
    await c.updateConversations({ updates: [{ key: k("o", "c4"), setMarks: [5] }] });
    const p2 = await c.listConversations({ ownerUserId: "o", pageSize: 2, pageToken: p1.nextPageToken });
    expect(ids(p2.conversations)).toEqual(["c2", "c1"]);
  });

  it("page_size 0 means the default page size", async () => {
    const small = setup({ defaultPageSize: 3 });
    await seed(small, "o", 5);
    const page = await small.listConversations({ ownerUserId: "o", pageSize: 0 });
    expect(ids(page.conversations)).toEqual(["c4", "c3", "c2"]);
    expect(page.nextPageToken).not.toBe("");

    const c = setup();
    await c.updateConversations({ updates: Array.from({ length: 101 }, (_, i) => ({ key: k("o", `c${i}`), setMarks: [1] })) });
    const def = await c.listConversations({ ownerUserId: "o" });
    expect(def.conversations).toHaveLength(100);
    expect(def.nextPageToken).not.toBe("");
    const rest = await c.listConversations({ ownerUserId: "o", pageToken: def.nextPageToken });
    expect(ids(rest.conversations)).toEqual(["c0"]);
    expect(rest.nextPageToken).toBe("");
  });

  it("a page_size above the maximum is capped", async () => {
    const c = setup({ maxPageSize: 2 });
    await seed(c, "o", 3);
    const page = await c.listConversations({ ownerUserId: "o", pageSize: 50 });
    expect(ids(page.conversations)).toEqual(["c2", "c1"]);
    expect(page.nextPageToken).not.toBe("");
  });

  it("a negative page_size is INVALID_ARGUMENT", async () => {
    const c = setup();
    await expectCode(c.listConversations({ ownerUserId: "o", pageSize: -1 }), Code.InvalidArgument);
  });

  it("a bad owner is INVALID_ARGUMENT", async () => {
    const c = setup();
    await expectCode(c.listConversations({ ownerUserId: "" }), Code.InvalidArgument);
    await expectCode(c.listConversations({ ownerUserId: "中".repeat(86) }), Code.InvalidArgument);
  });

  it("refuses a page_token from another filter or owner, and garbage tokens", async () => {
    const c = setup();
    await seed(c, "o", 3);
    await seed(c, "p", 3);
    const p1 = await c.listConversations({ ownerUserId: "o", pageSize: 1 });
    const t = p1.nextPageToken;
    expect(t).not.toBe("");
    // Same owner and filter: fine.
    expect(ids((await c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: t })).conversations)).toEqual(["c1"]);
    // A different page size is not a different filter.
    expect(ids((await c.listConversations({ ownerUserId: "o", pageSize: 5, pageToken: t })).conversations)).toEqual(["c1", "c0"]);
    await expectCode(c.listConversations({ ownerUserId: "p", pageSize: 1, pageToken: t }), Code.InvalidArgument);
    for (const filter of [{ marksAny: [1] }, { marksAll: [1] }, { marksNone: [2] }, { type: DIRECT }, { labelsAny: ["x"] }, { pinned: false }]) {
      await expectCode(c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: t, filter }), Code.InvalidArgument);
    }
    // And a token made under a filter does not work without it.
    const f1 = await c.listConversations({ ownerUserId: "o", pageSize: 1, filter: { marksAny: [1] } });
    expect(f1.nextPageToken).not.toBe("");
    await expectCode(c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: f1.nextPageToken }), Code.InvalidArgument);
    await expectCode(c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: f1.nextPageToken, filter: { marksAny: [2] } }), Code.InvalidArgument);
    expect(ids((await c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: f1.nextPageToken, filter: { marksAny: [1] } })).conversations)).toEqual(["c1"]);

    const garbage = [
      "garbage",
      "!!!!",
      "djEuNS5hYmM", // base64url of "v1.5.abc"
      Buffer.from("v1.5.AAAAAAAAAAAAAAAA").toString("base64url"),
      Buffer.from("v2.5.AAAAAAAAAAAAAAAA").toString("base64url"),
      Buffer.from("v1.-5.AAAAAAAAAAAAAAAA").toString("base64url"),
      t.slice(0, -2),
      t.slice(4),
    ];
    for (const pageToken of garbage) {
      await expectCode(c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken }), Code.InvalidArgument);
    }
  });

  it("accepts a token under an equivalent filter (same sets in another order, duplicates)", async () => {
    const c = setup();
    await c.updateConversations({
      updates: ["a", "b", "c"].map((id) => ({ key: k("o", id), setMarks: [1, 2], addLabels: ["x", "y"] })),
    });
    const p1 = await c.listConversations({ ownerUserId: "o", pageSize: 1, filter: { marksAll: [1, 2], labelsAny: ["x", "y"] } });
    expect(ids(p1.conversations)).toEqual(["c"]);
    const p2 = await c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: p1.nextPageToken, filter: { marksAll: [2, 1, 2], labelsAny: ["y", "x", "y"] } });
    expect(ids(p2.conversations)).toEqual(["b"]);
  });

  // BUG (src/service/page-token.ts decodePageToken): Buffer.from(token, "base64url") is lenient, it drops
  // a trailing partial character and skips whitespace, so strings the service never issued decode to a
  // valid cursor and are accepted. Fix: refuse unless the token is canonical, e.g.
  //   const raw = Buffer.from(token, "base64url"); if (raw.toString("base64url") !== token) throw INVALID_ARGUMENT.
  it("refuses a non-canonical spelling of an issued token (extra trailing char, embedded whitespace)", async () => {
    const c = setup();
    await seed(c, "o", 3);
    const t = (await c.listConversations({ ownerUserId: "o", pageSize: 1 })).nextPageToken;
    expect(t).not.toBe("");
    for (const pageToken of [t + "x", `${t.slice(0, 4)}\n${t.slice(4)}`, ` ${t}`]) {
      await expectCode(c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken }), Code.InvalidArgument);
    }
  });

  describe("filters", () => {
    // Written in this order, so newest first is the reverse.
    async function seedFilters(c: MarkClient) {
      const updates: UpdateInit[] = [
        { key: k("f", "d1"), setMarks: [1, 64], addLabels: ["work"], settings: { pinned: true } },
        { key: k("f", "d2"), setMarks: [2], addLabels: ["home", "work"] },
        { key: k("f", "g1", GROUP), setMarks: [1, 2], customMark: "c", settings: { pinned: false } },
        { key: k("f", "g2", GROUP), addLabels: ["x"] },
        { key: k("f", "d3"), setMarks: [3], settings: { receiveOption: 2 } },
        { key: k("other", "d9"), setMarks: [1, 2, 3, 64], addLabels: ["work", "x"], settings: { pinned: true } },
      ];
      for (const u of updates) {
        clock += 1000;
        const r = await c.updateConversations({ updates: [u] });
        okConv(r.results[0]);
      }
    }
    const list = async (c: MarkClient, filter: Parameters<MarkClient["listConversations"]>[0]["filter"]) =>
      ids((await c.listConversations({ ownerUserId: "f", filter })).conversations);

    it("applies each filter", async () => {
      const c = setup();
      await seedFilters(c);
      expect(await list(c, undefined)).toEqual(["d3", "g2", "g1", "d2", "d1"]);
      expect(await list(c, {})).toEqual(["d3", "g2", "g1", "d2", "d1"]);
      expect(await list(c, { marksAll: [1, 2] })).toEqual(["g1"]);
      expect(await list(c, { marksAll: [64] })).toEqual(["d1"]);
      expect(await list(c, { marksAll: [1, 64] })).toEqual(["d1"]);
      expect(await list(c, { marksAll: [1] })).toEqual(["g1", "d1"]);
      expect(await list(c, { marksAny: [2, 64] })).toEqual(["g1", "d2", "d1"]);
      expect(await list(c, { marksAny: [64] })).toEqual(["d1"]);
      expect(await list(c, { marksAny: [5] })).toEqual([]);
      expect(await list(c, { marksNone: [1] })).toEqual(["d3", "g2", "d2"]);
      expect(await list(c, { marksNone: [64] })).toEqual(["d3", "g2", "g1", "d2"]);
      expect(await list(c, { marksNone: [1, 2, 3] })).toEqual(["g2"]);
      expect(await list(c, { type: GROUP })).toEqual(["g2", "g1"]);
      expect(await list(c, { type: DIRECT })).toEqual(["d3", "d2", "d1"]);
      expect(await list(c, { labelsAny: ["work"] })).toEqual(["d2", "d1"]);
      expect(await list(c, { labelsAny: ["home", "x"] })).toEqual(["g2", "d2"]);
      expect(await list(c, { labelsAny: ["nope"] })).toEqual([]);
      expect(await list(c, { pinned: true })).toEqual(["d1"]);
      // pinned false: never set counts as not pinned.
      expect(await list(c, { pinned: false })).toEqual(["d3", "g2", "g1", "d2"]);
      // All given conditions must hold.
      expect(await list(c, { type: DIRECT, marksAny: [2, 3] })).toEqual(["d3", "d2"]);
      expect(await list(c, { marksAll: [1], marksNone: [64] })).toEqual(["g1"]);
      expect(await list(c, { labelsAny: ["work"], pinned: false })).toEqual(["d2"]);
      expect(await list(c, { marksAny: [1], type: GROUP, pinned: false })).toEqual(["g1"]);
    });

    it("pages within a filter", async () => {
      const c = setup();
      await seedFilters(c);
      const p1 = await c.listConversations({ ownerUserId: "f", pageSize: 2, filter: { marksNone: [64] } });
      expect(ids(p1.conversations)).toEqual(["d3", "g2"]);
      const p2 = await c.listConversations({ ownerUserId: "f", pageSize: 2, filter: { marksNone: [64] }, pageToken: p1.nextPageToken });
      expect(ids(p2.conversations)).toEqual(["g1", "d2"]);
      expect(p2.nextPageToken).toBe("");
    });

    it("refuses bad filters with INVALID_ARGUMENT", async () => {
      const c = setup();
      for (const filter of [
        { marksAll: [65] },
        { marksAny: [65] },
        { marksNone: [65] },
        { marksAll: [0] },
        { marksAny: [1, 0] },
        { type: 3 as ConversationType },
        { labelsAny: [""] },
        { labelsAny: ["é".repeat(128)] },
      ]) {
        await expectCode(c.listConversations({ ownerUserId: "f", filter }), Code.InvalidArgument);
      }
    });
  });
});

describe("vendor_conversation_id", () => {
  it("is stored verbatim, printed in JSON, found by the vendor_conversation_ids filter, refused when too long", async () => {
    const c = setup();
    const r = await c.updateConversations({
      updates: [
        { key: k("o", "bob"), vendorConversationId: "si_bob_o", settings: { pinned: true } },
        { key: k("o", "g", GROUP), vendorConversationId: "my team's room" },
        { key: k("o", "carol"), setMarks: [1] },
        { key: k("o", "x"), vendorConversationId: "é".repeat(513) },
      ],
    });
    expect(r.results.slice(0, 3).map((x) => okConv(x).vendorConversationId)).toEqual(["si_bob_o", "my team's room", ""]);
    expect(r.results[3]!.status!.code).toBe(Code.InvalidArgument);
    expect(errorInfoOf(r.results[3]!.status)?.field).toBe("vendor_conversation_id");
    const [read] = (await c.batchGetConversations({ keys: [k("o", "bob")] })).conversations;
    expect((toJson(ConversationSchema, read!) as Record<string, unknown>).vendorConversationId).toBe("si_bob_o");
    const byIds = async (ids: string[]) =>
      (await c.listConversations({ ownerUserId: "o", filter: { vendorConversationIds: ids } })).conversations.map((x) => x.key!.conversationId);
    expect(await byIds(["my team's room", "si_bob_o", "si_o_bob"])).toEqual(["g", "bob"]);
    expect(await byIds(["my team's room", "my team's room"])).toEqual(["g"]);
    await expectCode(c.listConversations({ ownerUserId: "o", filter: { vendorConversationIds: [""] } }), Code.InvalidArgument);
    await expectCode(c.listConversations({ ownerUserId: "o", filter: { vendorConversationIds: ["a".repeat(1025)] } }), Code.InvalidArgument);
    await expectCode(
      c.listConversations({ ownerUserId: "o", filter: { vendorConversationIds: Array.from({ length: 1001 }, (_, i) => `id${i}`) } }),
      Code.InvalidArgument,
    );
    // A page token is bound to the IDs it was issued for.
    const p1 = await c.listConversations({ ownerUserId: "o", pageSize: 1, filter: { vendorConversationIds: ["si_bob_o", "my team's room"] } });
    expect(p1.nextPageToken).not.toBe("");
    await expectCode(c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: p1.nextPageToken, filter: { vendorConversationIds: ["si_bob_o"] } }), Code.InvalidArgument);
    const p2 = await c.listConversations({ ownerUserId: "o", pageSize: 1, pageToken: p1.nextPageToken, filter: { vendorConversationIds: ["my team's room", "si_bob_o"] } });
    expect(ids(p2.conversations)).toEqual(["bob"]);
  });
});

describe("uint64 exactness", () => {
  it("mark 64 is mark_bits 2^63, a decimal string in JSON", async () => {
    const c = setup();
    const res = await c.updateConversations({
      updates: [{ key: k("o", "hi"), setMarks: [64] }, { key: k("o", "all"), setMarks: Array.from({ length: 64 }, (_, i) => i + 1) }],
    });
    const hi = okConv(res.results[0]);
    expect(hi.marks).toEqual([64]);
    expect(hi.markBits).toBe(9223372036854775808n);
    expect((toJson(ConversationSchema, hi) as Record<string, unknown>).markBits).toBe("9223372036854775808");
    const all = okConv(res.results[1]);
    expect(all.markBits).toBe(18446744073709551615n);
    expect((toJson(ConversationSchema, all) as Record<string, unknown>).markBits).toBe("18446744073709551615");
    // Read back from storage (signed there), still exact.
    const got = (await c.getConversation({ key: k("o", "hi") })).conversation!;
    expect(got.markBits).toBe(9223372036854775808n);
    expect((toJson(ConversationSchema, got) as Record<string, unknown>).markBits).toBe("9223372036854775808");
    const json = toJson(UpdateConversationsResponseSchema, res) as { results: { conversation: { markBits: string; version: string } }[] };
    expect(json.results[0]!.conversation.markBits).toBe("9223372036854775808");
    expect(json.results[0]!.conversation.version).toBe("1");
  });

  it("stays exact over the Connect JSON wire format", async () => {
    const c = setup({}, { json: true });
    const res = await c.updateConversations({ updates: [{ key: k("o", "hi"), setMarks: [64, 63] }] });
    expect(okConv(res.results[0]).markBits).toBe(13835058055282163712n); // 2^63 + 2^62
    const got = (await c.getConversation({ key: k("o", "hi") })).conversation!;
    expect(got.markBits).toBe(13835058055282163712n);
    expect(got.marks).toEqual([63, 64]);
    const list = await c.listConversations({ ownerUserId: "o", filter: { marksAll: [64] } });
    expect(ids(list.conversations)).toEqual(["hi"]);
  });
});

describe("KeyGuard", () => {
  it("refused items fail with the guard's code and reason and are not written; others apply", async () => {
    const calls: ConvKey[][] = [];
    const guard: KeyGuard = async (keys) => {
      calls.push([...keys]);
      return keys.map((key) => {
        if (key.conversationId.startsWith("nogroup")) return failure(Code.NotFound, "group not found", "GROUP_NOT_FOUND");
        if (key.owner === "stranger") return failure(Code.NotFound, "user not found", "USER_NOT_FOUND");
        if (key.conversationId === "dismissed") return failure(Code.FailedPrecondition, "group dismissed", "GROUP_DISMISSED");
        return undefined;
      });
    };
    const c = setup({}, { guard });
    const res = await c.updateConversations({
      updates: [
        { key: k("o", "ok1"), setMarks: [1] },
        { key: k("o", "nogroup1", GROUP), setMarks: [1] },
        { key: k("o", "bad"), setMarks: [65] },
        { key: k("stranger", "ok2"), setMarks: [1] },
        { key: k("o", "dismissed", GROUP), customMark: "x" },
        { key: k("o", "ok2", GROUP), addLabels: ["l"] },
      ],
    });
    expect(res.results).toHaveLength(6);
    expect(okConv(res.results[0]).marks).toEqual([1]);
    expectFailed(res.results[1], Code.NotFound, "GROUP_NOT_FOUND");
    expectFailed(res.results[2], Code.InvalidArgument);
    expectFailed(res.results[3], Code.NotFound, "USER_NOT_FOUND");
    expectFailed(res.results[4], Code.FailedPrecondition, "GROUP_DISMISSED");
    expect(okConv(res.results[5]).labels).toEqual(["l"]);

    // The guard saw only the valid items, in request order, once.
    expect(calls).toHaveLength(1);
    expect(calls[0]!.map((x) => `${x.owner}/${x.type}/${x.conversationId}`)).toEqual([
      "o/1/ok1",
      "o/2/nogroup1",
      "stranger/1/ok2",
      "o/2/dismissed",
      "o/2/ok2",
    ]);

    await expectCode(c.getConversation({ key: k("o", "nogroup1", GROUP) }), Code.NotFound);
    await expectCode(c.getConversation({ key: k("stranger", "ok2") }), Code.NotFound);
    await expectCode(c.getConversation({ key: k("o", "dismissed", GROUP) }), Code.NotFound);
    expect(ids((await c.listConversations({ ownerUserId: "o" })).conversations)).toEqual(["ok2", "ok1"]);
    expect((await c.listConversations({ ownerUserId: "stranger" })).conversations).toHaveLength(0);
  });

  it("is not called when no item is valid", async () => {
    let called = 0;
    const c = setup({}, { guard: async (keys) => (called++, keys.map(() => undefined)) });
    const res = await c.updateConversations({ updates: [{ key: k("o", "a"), setMarks: [0] }] });
    expectFailed(res.results[0], Code.InvalidArgument);
    expect(called).toBe(0);
  });

  it("a guard refusing everything writes nothing", async () => {
    const c = setup({}, { guard: async (keys) => keys.map(() => failure(Code.PermissionDenied, "no")) });
    const res = await c.updateConversations({ updates: [{ key: k("o", "a"), setMarks: [1] }, { key: k("o", "b"), setMarks: [2] }] });
    expectFailed(res.results[0], Code.PermissionDenied);
    expectFailed(res.results[1], Code.PermissionDenied);
    expect((await c.listConversations({ ownerUserId: "o" })).conversations).toHaveLength(0);
  });
});
