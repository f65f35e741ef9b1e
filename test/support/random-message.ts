// Seeded random protobuf-es messages of any schema, for the codec property tests (test/codec):
// every field set at random with edge values (varint length boundaries, 64-bit extremes, open enum
// numbers the schema does not name, every UTF-8 length class, lone surrogates, a leading BOM).
import { create, ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { prng } from "./prng.js";

export const U32_EDGES = [0, 1, 127, 128, 16383, 16384, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, 0x7fffffff, 0x80000000, 0xffffffff];
export const I32_EDGES = [0, 1, -1, 127, 128, -128, 0x7fffffff, -0x80000000, -0x7fffffff];
export const U64_EDGES = [0n, 1n, 127n, 128n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 2n ** 35n - 1n, 2n ** 35n, 2n ** 53n, 2n ** 56n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n];
export const I64_EDGES = [0n, 1n, -1n, 0x7fffffffn, -0x80000000n, 0xffffffffn, -0x100000000n, 2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n)];

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

export class Gen {
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
        return String.fromCharCode(0xe000 + this.int(0x2000)); // above the surrogates (U+FEFF among them: a BOM)
      default:
        return String.fromCharCode(0x20 + this.int(0x5f)); // ASCII
    }
  }

  string(): string {
    const len = this.pick([0, 0, 1, 3, 8, 20, 41, 42, 43, 44, 63, 64, 65, 100, 300, ...(this.int(50) === 0 ? [20_000] : [])]);
    const ascii = this.int(3) === 0;
    let s = "";
    while (s.length < len) s += ascii ? String.fromCharCode(0x20 + this.int(0x5f)) : this.char();
    // A leading U+FEFF: TextDecoder (so fromBinary) drops it.
    return len > 0 && this.int(20) === 0 ? `\uFEFF${s}` : s;
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
