// The generated binary encoders (gen/convmark/v1/binary_encoders.ts) against protobuf-es's toBinary:
// seeded random messages of every type they cover, byte for byte; the fast path must be the one
// taken (not the toBinary fallback); and every field of every message a MarkService response reaches
// must be generated and exercised.
import { create, ScalarType, toBinary, type DescField, type DescMessage, type Message, type MessageShape } from "@bufbuild/protobuf";
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
import { prng } from "../support/fuzzer.js";

const U32_EDGES = [0, 1, 127, 128, 16383, 16384, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, 0x7fffffff, 0x80000000, 0xffffffff];
const I32_EDGES = [0, 1, -1, 127, 128, -128, 0x7fffffff, -0x80000000, -0x7fffffff];
const U64_EDGES = [0n, 1n, 127n, 128n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 2n ** 35n - 1n, 2n ** 35n, 2n ** 53n, 2n ** 56n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n];
const I64_EDGES = [0n, 1n, -1n, 0x7fffffffn, -0x80000000n, 0xffffffffn, -0x100000000n, 2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n)];

function zeroOf(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.STRING:
      return "";
    case ScalarType.BOOL:
      return false;
    case ScalarType.BYTES:
      return new Uint8Array(0);
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 0n;
    default:
      return 0;
  }
}

class Gen {
  /** "Type.field" of every field given a value that toBinary writes. */
  readonly covered = new Set<string>();
  readonly r: () => number;

  constructor(seed: number) {
    this.r = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.r() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  char(): string {
    switch (this.int(8)) {
      case 0:
        return String.fromCharCode(0x80 + this.int(0x780)); // 2-byte UTF-8
      case 1:
        return String.fromCharCode(0x800 + this.int(0xd000 - 0x800)); // 3-byte
      case 2:
        return String.fromCodePoint(0x10000 + this.int(0x100000)); // surrogate pair, 4-byte
      case 3:
        return String.fromCharCode(0xd800 + this.int(0x800)); // a lone surrogate (U+FFFD)
      case 4:
        return String.fromCharCode(0xe000 + this.int(0x2000)); // above the surrogates
      default:
        return String.fromCharCode(0x20 + this.int(0x5f)); // ASCII
    }
  }

  string(): string {
    const len = this.pick([0, 0, 1, 3, 8, 20, 41, 42, 43, 44, 63, 64, 65, 100, 300, ...(this.int(50) === 0 ? [20_000] : [])]);
    const ascii = this.int(3) === 0;
    let s = "";
    while (s.length < len) s += ascii ? String.fromCharCode(0x20 + this.int(0x5f)) : this.char();
    return s;
  }

  scalar(t: ScalarType): unknown {
    switch (t) {
      case ScalarType.STRING:
        return this.string();
      case ScalarType.BYTES: {
        const b = new Uint8Array(this.pick([0, 1, 5, 127, 128, 300]));
        for (let i = 0; i < b.length; i++) b[i] = this.int(256);
        return b;
      }
      case ScalarType.BOOL:
        return this.int(2) === 1;
      case ScalarType.INT32:
      case ScalarType.SINT32:
      case ScalarType.SFIXED32:
        return this.int(2) ? this.pick(I32_EDGES) : this.int(2 ** 32) - 2 ** 31;
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        return this.int(2) ? this.pick(U32_EDGES) : this.int(2 ** 32);
      case ScalarType.INT64:
      case ScalarType.SINT64:
      case ScalarType.SFIXED64:
        return this.int(2) ? this.pick(I64_EDGES) : BigInt(this.int(2 ** 32) - 2 ** 31) * BigInt(this.int(2 ** 31));
      case ScalarType.UINT64:
      case ScalarType.FIXED64:
        return this.int(2) ? this.pick(U64_EDGES) : BigInt(this.int(2 ** 32)) * BigInt(this.int(2 ** 32));
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT:
        return this.pick([0, -0, 1.5, -2.25, 1e10, Number.NaN, Number.POSITIVE_INFINITY]);
    }
  }

  enumValue(f: DescField & { enum: NonNullable<DescField["enum"]> }): number {
    // Open enums: numbers the schema does not name are written as they are.
    return this.int(4) === 0 ? this.pick([-1, 99, 0x7fffffff, -0x80000000]) : this.pick(f.enum.values).number;
  }

  /** Mostly short; at the top level sometimes long (a nested long list would multiply). */
  listLength(depth: number): number {
    return this.pick([0, 0, 1, 2, 3, 5, ...(depth === 0 && this.int(5) === 0 ? [200, 1000] : [])]);
  }

  /** A random message of `desc`; every field set at random, nested to `depth`. */
  message(desc: DescMessage, depth = 0): Message {
    const m = create(desc) as unknown as Record<string, unknown>;
    for (const f of desc.fields) {
      if (f.oneof && this.int(2) === 0) continue;
      let value: unknown;
      let set = true;
      switch (f.fieldKind) {
        case "scalar":
          if (f.proto.proto3Optional && this.int(3) === 0) set = false;
          else value = this.int(4) === 0 ? zeroOf(f.scalar) : this.scalar(f.scalar);
          break;
        case "enum":
          if (f.proto.proto3Optional && this.int(3) === 0) set = false;
          else value = this.int(4) === 0 ? f.enum.values[0]!.number : this.enumValue(f);
          break;
        case "message":
          if (depth > 5 || this.int(4) === 0) set = false;
          else value = this.message(f.message, depth + 1);
          break;
        case "list": {
          const n = depth > 5 ? 0 : this.listLength(depth);
          const items: unknown[] = [];
          for (let i = 0; i < n; i++) {
            items.push(f.listKind === "message" ? this.message(f.message, depth + 1) : f.listKind === "enum" ? this.enumValue(f) : this.scalar(f.scalar));
          }
          value = items;
          break;
        }
        case "map":
          set = false; // no message in scope has maps (the coverage test checks)
          break;
      }
      if (!set) continue;
      if (f.oneof) m[f.oneof.localName] = { case: f.localName, value };
      else m[f.localName] = value;
      if (this.written(f, value)) this.covered.add(`${desc.typeName}.${f.name}`);
    }
    return m as unknown as Message;
  }

  private written(f: DescField, value: unknown): boolean {
    if (f.oneof || f.fieldKind === "message" || f.proto.proto3Optional) return true;
    if (Array.isArray(value)) return value.length > 0;
    return value !== "" && value !== false && value !== 0 && value !== 0n && !(value instanceof Uint8Array && value.length === 0);
  }
}

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
