// The generated binary encoders (gen/convmark/v1/binary_encoders.ts) against protobuf-es's toBinary:
// seeded random messages of every type they cover, byte for byte; the fast path must be the one
// taken (not the toBinary fallback); and every field of every message a MarkService response reaches
// must be generated and exercised.
import { create, toBinary, type DescMessage, type Message, type MessageShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { binaryEncoders } from "../../gen/convmark/v1/binary_encoders.js";
import {
  ConversationChangeSchema,
  ConversationSchema,
  MarkService,
  SyncConversationsResponseSchema,
  UpdateConversationsResponseSchema,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { encodeMessage } from "../../src/codec/encode.js";
import { reachableMessages } from "../../src/codec/reachable.js";
import { Gen, I32_EDGES, I64_EDGES, U32_EDGES, U64_EDGES } from "../support/random-message.js";

const responseSchemas = Object.values(MarkService.method).map((m) => m.output);
const inScope = reachableMessages(responseSchemas);

function expectSameBytes(schema: DescMessage, m: Message, context: string): void {
  const fast = binaryEncoders.get(schema)!(m);
  expect(fast, `${context}: the fast path declined`).toBeDefined();
  expect(Buffer.from(fast!).equals(Buffer.from(toBinary(schema, m))), `${context}: bytes differ from toBinary`).toBe(true);
}

describe("generated binary encoders", () => {
  it("cover every message and field a MarkService response reaches, with no toBinary-only feature", () => {
    const names = inScope.map((m) => m.typeName);
    for (const n of ["convmark.v1.SyncConversationsResponse", "convmark.v1.ConversationChange", "convmark.v1.UpdateResult", "google.protobuf.Timestamp", "google.rpc.Status", "google.protobuf.Any"]) {
      expect(names).toContain(n);
    }
    for (const m of inScope) {
      expect(binaryEncoders.has(m), `${m.typeName} has a generated encoder`).toBe(true);
      for (const f of m.fields) {
        expect(f.fieldKind, `${m.typeName}.${f.name}: maps go to toBinary`).not.toBe("map");
        expect("delimitedEncoding" in f && f.delimitedEncoding, `${m.typeName}.${f.name}: group encoding goes to toBinary`).toBeFalsy();
      }
    }
  });

  it("write toBinary's bytes for seeded random messages of every covered type", () => {
    const covered = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const g = new Gen(seed);
      for (const schema of binaryEncoders.keys()) {
        expectSameBytes(schema, g.message(schema), `${schema.typeName}, seed ${seed}`);
      }
      for (const c of g.covered) covered.add(c);
    }
    // Every field of every message in scope took a value toBinary writes in at least one case.
    const missing = inScope.flatMap((m) => m.fields.map((f) => `${m.typeName}.${f.name}`)).filter((n) => !covered.has(n));
    expect(missing).toEqual([]);
  });

  it("write toBinary's bytes for empty messages and for a large Sync response", () => {
    for (const schema of binaryEncoders.keys()) expectSameBytes(schema, create(schema), `empty ${schema.typeName}`);
    const g = new Gen(4242);
    const changes = Array.from({ length: 1000 }, () => g.message(ConversationChangeSchema));
    const sync = create(SyncConversationsResponseSchema, { nextCursor: "c".repeat(200), hasMore: true });
    sync.changes = changes as never;
    expectSameBytes(SyncConversationsResponseSchema, sync, "1,000 random changes");
  });

  it("write 64-bit and 32-bit extremes, open enum values and long repeated fields like toBinary", () => {
    for (const v of U64_EDGES) {
      for (const seconds of I64_EDGES) {
        const c = create(ConversationSchema, { version: v, markBits: v, updateTime: { seconds, nanos: -1 } });
        expectSameBytes(ConversationSchema, c, `version ${v}, seconds ${seconds}`);
      }
    }
    for (const v of I32_EDGES) {
      expectSameBytes(ConversationSchema, create(ConversationSchema, { settings: { burnDurationSeconds: v, receiveOption: v } }), `int32 ${v}`);
    }
    const c = create(ConversationSchema, { marks: U32_EDGES.concat(Array.from({ length: 10_000 }, (_, i) => i)), labels: Array.from({ length: 2000 }, (_, i) => `l${i}`) });
    expectSameBytes(ConversationSchema, c, "10,000 marks");
  });

  it("fall back to toBinary for unknown fields, and fail like it for values it rejects", () => {
    const g = new Gen(7);
    const change = g.message(ConversationChangeSchema) as MessageShape<typeof ConversationChangeSchema>;
    change.conversation = create(ConversationSchema, { customMark: "x" });
    change.conversation.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([5]) }];
    expect(binaryEncoders.get(ConversationChangeSchema)!(change)).toBeUndefined();
    const bytes = encodeMessage(ConversationChangeSchema, change);
    expect(Buffer.from(bytes).equals(Buffer.from(toBinary(ConversationChangeSchema, change)))).toBe(true);
    expect(Buffer.from(bytes).includes(Buffer.from([0x98, 0x06, 5]))).toBe(true); // field 99, varint 5
    expect(bytes.length).toBeGreaterThan(toBinary(ConversationChangeSchema, { ...change, conversation: create(ConversationSchema, { customMark: "x" }) }).length);

    for (const bad of [create(ConversationSchema, { marks: [-1] }), create(ConversationSchema, { marks: [1.5] }), create(ConversationSchema, { version: -1n }), create(ConversationSchema, { version: 2n ** 64n })]) {
      expect(() => toBinary(ConversationSchema, bad)).toThrow();
      expect(() => encodeMessage(ConversationSchema, bad)).toThrow(/cannot encode field convmark\.v1\.Conversation\./);
    }
  });

  it("is what encodeMessage uses for the response messages", () => {
    const g = new Gen(11);
    const update = g.message(UpdateConversationsResponseSchema) as MessageShape<typeof UpdateConversationsResponseSchema>;
    const bytes = encodeMessage(UpdateConversationsResponseSchema, update);
    expect(Buffer.from(bytes).equals(Buffer.from(toBinary(UpdateConversationsResponseSchema, update)))).toBe(true);
    // A buffer of its own (not a slice of a shared pool), so callers may keep it.
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.buffer.byteLength).toBe(bytes.length);
  });
});
