// The generated binary decoders (gen/convmark/v1/binary_decoders.ts, decodeMessage) against
// protobuf-es's fromBinary on the same bytes: seeded random messages of every type, canonical and
// not (two encodings interleaved field by field, so singular fields repeat and repeated ones are
// split across the body; packed fields unpacked or split in two; fields shuffled; unknown fields of
// every wire type, groups included, inserted at any depth), then truncated and mutated ones: both
// throw (with the same message) or both return the same object, down to key order, prototypes,
// bigint and Uint8Array types and the buffer a bytes value views. Every message either service
// reaches must have a decoder.
import { fromBinary, toBinary, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { binaryDecoders } from "../../gen/convmark/v1/binary_decoders.js";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { ConversationSchema, MarkService, SyncConversationsResponseSchema, UpdateConversationsRequestSchema, type Conversation } from "../../gen/convmark/v1/mark_service_pb.js";
import { decodeMessage } from "../../src/codec/decode.js";
import { encodeMessage } from "../../src/codec/encode.js";
import { grpcCodec } from "../../src/codec/grpc-codec.js";
import { reachableMessages } from "../../src/codec/reachable.js";
import { Gen } from "../support/random-message.js";

const methods = [...Object.values(MarkService.method), ...Object.values(DirectoryService.method)];
const inScope = reachableMessages(methods.flatMap((m) => [m.input, m.output]));

/** Where `a` and `b` differ (undefined when they do not): values, types, prototypes, own keys in order, what a Uint8Array views. */
function difference(a: unknown, b: unknown, input?: ArrayBufferLike, path = "$"): string | undefined {
  if (typeof a !== typeof b) return `${path}: ${typeof a} vs ${typeof b}`;
  if (typeof a !== "object" || a === null || b === null) {
    return Object.is(a, b) ? undefined : `${path}: ${String(a)} vs ${String(b)}`;
  }
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: different prototypes`;
  if (a instanceof Uint8Array) {
    const y = b as Uint8Array;
    if (!Buffer.from(a).equals(Buffer.from(y))) return `${path}: bytes differ`;
    // A value read from the input is a view of it, at the same place.
    if ((a.buffer === input) !== (y.buffer === input) || (a.buffer === input && a.byteOffset !== y.byteOffset)) return `${path}: views ${a.byteOffset}+${a.length} vs ${y.byteOffset}+${y.length} (or another buffer)`;
    return undefined;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b as object);
  if (ka.join() !== kb.join()) return `${path}: keys [${ka.join()}] vs [${kb.join()}]`;
  for (const k of ka) {
    const d = difference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], input, `${path}.${k}`);
    if (d) return d;
  }
  return undefined;
}

type Outcome = { ok: true; value: Message } | { ok: false; error: string };

function attempt(f: () => Message): Outcome {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

/** decodeMessage and fromBinary agree on `bytes`; returns whether they decoded it. */
function expectParity(schema: DescMessage, bytes: Uint8Array, context: string): boolean {
  const ref = attempt(() => fromBinary(schema, bytes));
  const gen = attempt(() => decodeMessage(schema, bytes));
  const where = () => `${context} (${schema.typeName}, ${Buffer.from(bytes.subarray(0, 64)).toString("hex")}${bytes.length > 64 ? "…" : ""})`;
  if (!ref.ok || !gen.ok) {
    expect(gen.ok ? "decoded" : gen.error, `${where()}: fromBinary ${ref.ok ? "decoded" : "threw"}`).toBe(ref.ok ? "decoded" : ref.error);
    return false;
  }
  expect(difference(gen.value, ref.value, bytes.buffer), where()).toBeUndefined();
  // Unknown fields included, the decoded message encodes to the same bytes (large ones are left to
  // the test of large messages: toBinary of a 1,000-change page costs milliseconds).
  if (bytes.length <= 16_384) expect(Buffer.from(encodeMessage(schema, gen.value)).equals(Buffer.from(toBinary(schema, ref.value))), `${where()}: re-encoded`).toBe(true);
  return true;
}

// ---- Wire-level rewriting (from valid encodings to other valid encodings of the same schema) ----

interface WireField {
  no: number;
  wt: number;
  /** Everything after the tag (for wire type 2 the payload without its length; for groups up to and including the end tag). */
  value: Uint8Array;
}

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function readVarint(b: Uint8Array, pos: number): [value: number, next: number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos++]!;
    v += (x & 0x7f) * mul;
    mul *= 128;
    if (x < 0x80) return [v, pos];
  }
}

/** The end of the value of wire type `wt` at `pos` (groups: after the matching end tag). */
function valueEnd(b: Uint8Array, wt: number, pos: number): number {
  switch (wt) {
    case 0:
      return readVarint(b, pos)[1];
    case 1:
      return pos + 8;
    case 5:
      return pos + 4;
    case 2: {
      const [len, p] = readVarint(b, pos);
      return p + len;
    }
    case 3:
      for (;;) {
        const [tag, p] = readVarint(b, pos);
        if ((tag & 7) === 4) return p;
        pos = valueEnd(b, tag & 7, p);
      }
    default:
      throw new Error(`wire type ${wt}`);
  }
}

function parse(b: Uint8Array): WireField[] {
  const out: WireField[] = [];
  let pos = 0;
  while (pos < b.length) {
    const [tag, p] = readVarint(b, pos);
    const wt = tag % 8;
    const end = valueEnd(b, wt, p);
    out.push({ no: Math.floor(tag / 8), wt, value: wt === 2 ? b.subarray(readVarint(b, p)[1], end) : b.subarray(p, end) });
    pos = end;
  }
  return out;
}

function serialize(fields: readonly WireField[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of fields) parts.push(new Uint8Array([...varint(f.no * 8 + f.wt), ...(f.wt === 2 ? varint(f.value.length) : [])]), f.value);
  return new Uint8Array(Buffer.concat(parts));
}

/** The wire type of one element of a packable repeated field, or undefined for fields that are not. */
function elementWire(f: DescField | undefined): number | undefined {
  if (f?.fieldKind !== "list" || f.listKind === "message") return undefined;
  if (f.listKind === "enum") return 0;
  const t = f.scalar;
  if (t === 9 /* STRING */ || t === 12 /* BYTES */) return undefined;
  return t === 1 /* DOUBLE */ || t === 6 /* FIXED64 */ || t === 16 /* SFIXED64 */ ? 1 : t === 2 /* FLOAT */ || t === 7 /* FIXED32 */ || t === 15 /* SFIXED32 */ ? 5 : 0;
}

function elements(payload: Uint8Array, wt: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let p = 0; p < payload.length; ) {
    const end = valueEnd(payload, wt, p);
    out.push(payload.subarray(p, end));
    p = end;
  }
  return out;
}

/** A random unknown field (numbers the schema does not use, every wire type, groups nested). */
function unknownField(g: Gen, schema: DescMessage, depth = 0): WireField {
  let no: number;
  do no = g.pick([1 + g.int(40), 100 + g.int(1000), 19_000 + g.int(1000), 536_870_911]);
  while (schema.fields.some((f) => f.number === no));
  const wt = g.pick(depth < 3 ? [0, 0, 1, 2, 2, 3, 5] : [0, 1, 2, 5]);
  switch (wt) {
    case 0:
      return { no, wt, value: new Uint8Array(varint(g.pick([0, 1, 300, 2 ** 32, 2n ** 63n, 2n ** 64n - 1n]))) };
    case 1:
    case 5:
    case 2:
      return { no, wt, value: new Uint8Array(Array.from({ length: wt === 1 ? 8 : wt === 5 ? 4 : g.int(20) }, () => g.int(256))) };
    default: {
      const inner = Array.from({ length: g.int(3) }, () => unknownField(g, schema, depth + 1));
      return { no, wt, value: new Uint8Array([...serialize(inner), ...varint(no * 8 + 4)]) };
    }
  }
}

/**
 * Another valid encoding of what `a` and `b` (encodings of `schema`) merge to: their fields
 * interleaved at random (repeated singular fields, repeated fields split), nested messages rewritten
 * the same way, packed fields unpacked or split, fields shuffled, unknown fields inserted.
 */
function rewrite(g: Gen, schema: DescMessage, a: Uint8Array, b: Uint8Array, depth = 0): Uint8Array {
  const fa = parse(a);
  const fb = g.int(3) === 0 ? parse(b) : [];
  let fields: WireField[] = [];
  while (fa.length || fb.length) fields.push((fb.length === 0 || (fa.length && g.int(2)) ? fa : fb).shift()!);
  fields = fields.flatMap((f): WireField[] => {
    const field = schema.fields.find((x) => x.number === f.no);
    if (field?.message && f.wt === 2 && depth < 6 && g.int(2)) return [{ ...f, value: rewrite(g, field.message, f.value, new Uint8Array(0), depth + 1) }];
    const ew = elementWire(field);
    if (ew === undefined || f.wt !== 2) return [f];
    const items = elements(f.value, ew);
    switch (g.int(3)) {
      case 0: // unpacked: one field per element
        return items.map((value) => ({ no: f.no, wt: ew, value }));
      case 1: {
        // two packed runs (one may be empty)
        const cut = g.int(items.length + 1);
        const join = (xs: Uint8Array[]) => new Uint8Array(Buffer.concat(xs));
        return [
          { ...f, value: join(items.slice(0, cut)) },
          { ...f, value: join(items.slice(cut)) },
        ];
      }
      default:
        return [f];
    }
  });
  if (g.int(3) === 0) {
    for (let i = fields.length - 1; i > 0; i--) {
      const j = g.int(i + 1);
      [fields[i], fields[j]] = [fields[j]!, fields[i]!];
    }
  }
  for (let n = g.pick([0, 0, 1, 3]); n > 0; n--) fields.splice(g.int(fields.length + 1), 0, unknownField(g, schema));
  return serialize(fields);
}

/** A few kinds of damage: truncation, a byte changed, bytes inserted or removed, a tag's wire type changed. */
function damage(g: Gen, b: Uint8Array): Uint8Array {
  const out = [...b];
  switch (g.int(5)) {
    case 0:
      return b.subarray(0, g.int(b.length));
    case 1:
      for (let n = 1 + g.int(3); n > 0 && out.length; n--) out[g.int(out.length)] = g.pick([0x00, 0x80, 0xff, 0x7f, 0x08, 0x0f, 0xc0, 0xed, 0xf4, g.int(256)]);
      break;
    case 2:
      out.splice(g.int(out.length + 1), 0, ...Array.from({ length: 1 + g.int(4) }, () => g.int(256)));
      break;
    case 3:
      out.splice(g.int(out.length + 1), 1 + g.int(4));
      break;
    default: {
      const i = g.int(out.length + 1);
      if (i < out.length && out[i]! < 0x80) out[i] = (out[i]! & ~7) | g.int(8);
    }
  }
  return new Uint8Array(out);
}

const schemas = [...binaryDecoders.keys()];

describe("generated binary decoders", () => {
  it("exist for every message either service reaches, and decodeMessage uses them", () => {
    const names = inScope.map((m) => m.typeName);
    for (const n of ["convmark.v1.UpdateConversationsRequest", "convmark.v1.SyncConversationsResponse", "google.protobuf.Timestamp", "google.rpc.Status", "google.protobuf.Any"]) {
      expect(names).toContain(n);
    }
    for (const m of inScope) expect(binaryDecoders.has(m), `${m.typeName} has a generated decoder`).toBe(true);
    // The generated path, not fromBinary: a wrong $typeName would show only here.
    const bytes = toBinary(ConversationSchema, new Gen(3).message(ConversationSchema) as Conversation);
    expect(binaryDecoders.get(ConversationSchema)!(bytes)).toEqual(fromBinary(ConversationSchema, bytes));
  });

  it("return what fromBinary returns for seeded random messages of every type (every field exercised), as given and rewritten", () => {
    const covered = new Set<string>();
    let rewritten = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const g = new Gen(seed);
      for (const schema of schemas) {
        const a = toBinary(schema, g.message(schema));
        expectParity(schema, a, `seed ${seed}`);
        const b = toBinary(schema, g.message(schema));
        const other = rewrite(g, schema, a, b);
        // A rewritten valid encoding stays valid: fromBinary must decode it.
        expect(expectParity(schema, other, `seed ${seed}, rewritten`), `seed ${seed}: fromBinary refused a rewritten encoding`).toBe(true);
        if (!Buffer.from(other).equals(Buffer.from(a))) rewritten++;
      }
      for (const c of g.covered) covered.add(c);
    }
    const missing = inScope.flatMap((m) => m.fields.map((f) => `${m.typeName}.${f.name}`)).filter((n) => !covered.has(n));
    expect(missing).toEqual([]);
    expect(rewritten).toBeGreaterThan(schemas.length * 10);
  });

  it("keep unknown fields in $unknown as fromBinary does, so that the message re-encodes byte for byte", () => {
    const g = new Gen(99);
    let withUnknown = 0;
    for (let i = 0; i < 300; i++) {
      const schema = g.pick(schemas);
      const bytes = rewrite(g, schema, toBinary(schema, g.message(schema)), new Uint8Array(0));
      expectParity(schema, bytes, `unknown ${i}`);
      if ((decodeMessage(schema, bytes).$unknown?.length ?? 0) > 0) withUnknown++;
    }
    expect(withUnknown).toBeGreaterThan(50);
  });

  it("throw where fromBinary throws, and agree where it does not, on truncated and damaged input", () => {
    let threw = 0;
    let decoded = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const g = new Gen(1000 + seed);
      for (const schema of schemas) {
        let valid = rewrite(g, schema, toBinary(schema, g.message(schema)), toBinary(schema, g.message(schema)));
        // Damage is about structure, not volume: small messages (a few tries).
        for (let tries = 0; valid.length > 2000 && tries < 5; tries++) valid = rewrite(g, schema, toBinary(schema, g.message(schema)), new Uint8Array(0));
        for (let k = 0; k < 8; k++) {
          if (expectParity(schema, damage(g, valid), `seed ${seed}, damage ${k}`)) decoded++;
          else threw++;
        }
      }
    }
    // Both outcomes are exercised in numbers.
    expect(threw).toBeGreaterThan(500);
    expect(decoded).toBeGreaterThan(500);
  });

  it("throw like fromBinary on every prefix of a message, and on hand-made malformed input", () => {
    const g = new Gen(5);
    const update = toBinary(UpdateConversationsRequestSchema as DescMessage, g.message(UpdateConversationsRequestSchema));
    for (let n = 0; n < Math.min(update.length, 3000); n++) expectParity(UpdateConversationsRequestSchema, update.subarray(0, n), `prefix ${n}`);
    const cases: [string, number[]][] = [
      ["field number 0", [0x02, 0x00]],
      ["wire type 6", [0x0e]],
      ["wire type 7", [0x0f]],
      ["a 5-byte tag over 32 bits", [0xff, 0xff, 0xff, 0xff, 0x1f, 0x00]],
      ["a 6-byte tag", [0x88, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00]],
      ["an 11-byte varint", [0x30, ...Array(10).fill(0xff), 0x01]],
      ["a 10-byte varint (accepted)", [0x30, ...Array(9).fill(0xff), 0x01]],
      ["an unknown varint of 12 bytes (skip does not limit it)", [0xf8, 0x06, ...Array(11).fill(0x80), 0x01]],
      ["a truncated varint", [0x30, 0x80]],
      ["a length past the end", [0x0a, 0x05, 0x01]],
      ["a nested message longer than its parent", [0x0a, 0x03, 0x0a, 0x05, 0x0a, 0x03, 0x61, 0x62, 0x63]],
      ["a nested varint crossing its message's end", [0x0a, 0x02, 0x10, 0x81, 0x01, 0x1a, 0x01, 0x61]],
      ["a stray end-group tag", [0x0c]],
      ["an unknown group without its end", [0xf3, 0x06, 0x08, 0x01]],
      ["an unknown group closed by another number", [0xf3, 0x06, 0xfc, 0x07]],
      ["an unknown group (accepted)", [0xf3, 0x06, 0x08, 0x01, 0xf4, 0x06]],
      ["unknown groups nested 99 deep (accepted)", [...Array(99).fill([0xf3, 0x06]).flat(), ...Array(99).fill([0xf4, 0x06]).flat()]],
      ["unknown groups nested 100 deep (the recursion limit)", [...Array(100).fill([0xf3, 0x06]).flat(), ...Array(100).fill([0xf4, 0x06]).flat()]],
      ["a known string field with wire type 0", [0x18, 0x01, 0x61]],
      ["invalid UTF-8: a lone continuation byte", [0x1a, 0x01, 0x80]],
      ["invalid UTF-8: overlong", [0x1a, 0x02, 0xc0, 0xaf]],
      ["invalid UTF-8: an encoded surrogate", [0x1a, 0x03, 0xed, 0xa0, 0x80]],
      ["invalid UTF-8: above U+10FFFF", [0x1a, 0x04, 0xf4, 0x90, 0x80, 0x80]],
      ["invalid UTF-8: truncated", [0x1a, 0x02, 0xe2, 0x82]],
      ["a leading BOM (dropped)", [0x1a, 0x04, 0xef, 0xbb, 0xbf, 0x61]],
      ["a BOM later (kept)", [0x1a, 0x04, 0x61, 0xef, 0xbb, 0xbf]],
      ["packed uint32 with a truncated element", [0x12, 0x02, 0x01, 0x80]],
      ["packed uint32 longer than the message", [0x12, 0x05, 0x01]],
      ["unpacked uint32", [0x10, 0x01, 0x10, 0x02, 0x12, 0x01, 0x03]],
      ["repeated string as wire type 0", [0x20, 0x01, 0x61]],
      ["a message field with wire type 0 (read as a message)", [0x08, 0x02, 0x08, 0x01]],
      ["duplicated key message (merged)", [0x0a, 0x02, 0x10, 0x01, 0x0a, 0x03, 0x1a, 0x01, 0x78]],
      ["64-bit extremes", [0x30, ...varint(2n ** 64n - 1n), 0x40, ...varint(2n ** 63n)]],
      ["a fixed64 unknown field cut short", [0xf9, 0x06, 0x01, 0x02]],
    ];
    for (const [name, bytes] of cases) {
      for (const schema of [ConversationSchema, SyncConversationsResponseSchema, UpdateConversationsRequestSchema]) {
        expectParity(schema, new Uint8Array(bytes), name);
        expectParity(schema, Buffer.from(bytes), `${name} (a Buffer)`);
      }
    }
    // The cases do what their names say (fromBinary is the judge).
    const bytesOf = (name: string) => new Uint8Array(cases.find((c) => c[0] === name)![1]);
    expect(() => fromBinary(ConversationSchema, bytesOf("unknown groups nested 100 deep (the recursion limit)"))).toThrow(/recursion/);
    expect(() => fromBinary(ConversationSchema, bytesOf("invalid UTF-8: overlong"))).toThrow();
    expect(fromBinary(ConversationSchema, bytesOf("a leading BOM (dropped)")).customMark).toBe("a");
  });

  it("decode a 1,000-change Sync page and a 100-update request exactly; grpcCodec round-trips through Buffers", () => {
    const g = new Gen(4242);
    for (const schema of [SyncConversationsResponseSchema, UpdateConversationsRequestSchema] as DescMessage[]) {
      const big = g.message(schema) as Message & Record<string, unknown>;
      const list = schema === SyncConversationsResponseSchema ? "changes" : "updates";
      const item = schema.fields.find((f) => f.localName === list)!.message!;
      big[list] = Array.from({ length: schema === SyncConversationsResponseSchema ? 1000 : 100 }, () => g.message(item));
      const bytes = toBinary(schema, big);
      expect(expectParity(schema, bytes, "large")).toBe(true);
      const codec = grpcCodec(schema);
      const wire = codec.serialize(big);
      expect(Buffer.isBuffer(wire) && wire.equals(Buffer.from(bytes))).toBe(true);
      expect(difference(codec.deserialize(wire), fromBinary(schema, wire), wire.buffer)).toBeUndefined();
    }
  });
});
