/**
 * The runtime of the generated binary decoders (gen/convmark/v1/binary_decoders.ts, written by
 * src/codec/protoc-gen-codec.ts): a protobuf reader that behaves exactly like protobuf-es's
 * BinaryReader as fromBinary drives it (node_modules/@bufbuild/protobuf/dist/esm/wire/
 * binary-encoding.js, varint.js, from-binary.js), only faster on the common cases:
 * - bounds are checked against the whole buffer, never against a nested message's end (a varint
 *   may run past a sub-message's length; the parent goes on from where it stopped);
 * - a varint past the end of the buffer, a length past it, a tag over 32 bits, field number 0 or
 *   wire type 6/7 throw; unknown fields are skipped as BinaryReader.skip does (an unbounded varint,
 *   groups with matching end tags within the remaining recursion budget) and kept as
 *   `{ no, wireType, data }` with `data` a subarray of the input;
 * - strings: ASCII is sliced directly, anything else goes through protobuf-es's own UTF-8
 *   decoder (getTextEncoding, strict for fields with UTF-8 validation), so invalid UTF-8 throws
 *   and a leading BOM is dropped exactly as in fromBinary;
 * - 64-bit integers become what protoInt64 returns (bigint, or strings under BUF_BIGINT_DISABLE).
 */
import { protoInt64, type UnknownField } from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import { Cursor } from "./wire.js";

/** protobuf-es's default recursion limit (makeReadContext). */
export const RECURSION_LIMIT = 100;

const NATIVE_BIGINT = protoInt64.supported;

/** The zero of 64-bit fields, as create() sets it. */
export const ZERO64: bigint = protoInt64.zero;

/** Thrown as fromBinary's readMessage does when nesting exceeds the recursion limit. */
export function tooDeep(typeName: string): never {
  throw new Error(`cannot decode message ${typeName} from binary: maximum recursion depth of ${RECURSION_LIMIT} reached`);
}

/** Sets the unknown fields a decoder read (the rare case, so out of the generated code). */
export function withUnknown<M extends { $unknown?: UnknownField[] }>(m: M, unknown: UnknownField[]): M {
  m.$unknown = unknown;
  return m;
}

export class Reader extends Cursor {
  readonly buf: Uint8Array;
  readonly len: number;
  /** The high 32 bits of the last varint64 read (the low bits are returned). */
  private hi = 0;
  private text: Buffer | undefined;

  constructor(buf: Uint8Array) {
    super();
    this.buf = buf;
    this.len = buf.length;
  }

  /** BinaryReader.assertBounds. */
  private bounds(): void {
    if (this.pos > this.len) throw new RangeError("premature EOF");
  }

  /** A tag (field number << 3 | wire type), validated like BinaryReader.tag. */
  tag(): number {
    const b = this.buf[this.pos]!; // undefined past the end: the slow path throws
    if (b >= 8 && b < 0x80 && (b & 7) < 6) {
      this.pos++;
      return b;
    }
    const start = this.pos;
    const tag = this.varint32();
    const n = this.pos - start;
    if (n > 5 || (n === 5 && this.buf[this.pos - 1]! > 0x0f)) throw new Error("illegal tag: varint overflows uint32");
    if (tag >>> 3 <= 0 || (tag & 7) > 5) throw new Error(`illegal tag: field no ${tag >>> 3} wire type ${tag & 7}`);
    return tag;
  }

  /** uint32 (also lengths): BinaryReader.uint32. */
  u32(): number {
    const b = this.buf[this.pos]!;
    if (b < 0x80) {
      this.pos++;
      return b;
    }
    return this.varint32();
  }

  /** varint32read, step for step (up to 10 bytes, the bits above 32 dropped). */
  private varint32(): number {
    const buf = this.buf;
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const b = buf[this.pos++]!;
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return this.bounded(result);
    }
    let b = buf[this.pos++]!;
    result |= (b & 0x0f) << 28;
    for (let read = 5; (b & 0x80) !== 0 && read < 10; read++) b = buf[this.pos++]!;
    if ((b & 0x80) !== 0) throw new Error("invalid varint");
    return this.bounded(result >>> 0);
  }

  private bounded(v: number): number {
    this.bounds();
    return v;
  }

  /** varint64read, byte for byte: returns the low 32 bits (signed), leaves the high ones in `hi`. */
  private varint64(): number {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const b = buf[this.pos++]!;
      lo |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return this.lohi(lo, hi);
    }
    const middle = buf[this.pos++]!;
    lo |= (middle & 0x0f) << 28;
    hi = (middle & 0x70) >> 4;
    if ((middle & 0x80) === 0) return this.lohi(lo, hi);
    for (let shift = 3; shift <= 31; shift += 7) {
      const b = buf[this.pos++]!;
      hi |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return this.lohi(lo, hi);
    }
    throw new Error("invalid varint");
  }

  private lohi(lo: number, hi: number): number {
    this.bounds();
    this.hi = hi;
    return lo;
  }

  int32(): number {
    return this.u32() | 0;
  }

  sint32(): number {
    const z = this.u32();
    return (z >>> 1) ^ -(z & 1);
  }

  bool(): boolean {
    const b = this.buf[this.pos]!;
    if (b < 0x80) {
      this.pos++;
      return b !== 0;
    }
    return this.varint64() !== 0 || this.hi !== 0;
  }

  uint64(): bigint {
    const b = this.buf[this.pos]!;
    if (b < 0x80 && NATIVE_BIGINT) {
      this.pos++;
      return BigInt(b);
    }
    const lo = this.varint64();
    return NATIVE_BIGINT && this.hi === 0 ? BigInt(lo >>> 0) : protoInt64.uDec(lo, this.hi);
  }

  int64(): bigint {
    const lo = this.varint64();
    return NATIVE_BIGINT && this.hi === 0 ? BigInt(lo >>> 0) : protoInt64.dec(lo, this.hi);
  }

  sint64(): bigint {
    const lo = this.varint64();
    const s = -(lo & 1);
    return protoInt64.dec(((lo >>> 1) | ((this.hi & 1) << 31)) ^ s, (this.hi >>> 1) ^ s);
  }

  /** fixed64 and sfixed64 are read as two int32 halves, as BinaryReader reads them. */
  private int32At(): number {
    return this.view.getInt32(this.at(4), true);
  }

  fixed64(): bigint {
    return protoInt64.uDec(this.int32At(), this.int32At());
  }

  sfixed64(): bigint {
    return protoInt64.dec(this.int32At(), this.int32At());
  }

  /** A length-delimited payload: its start (the position moves past it, bounds checked). */
  private delimited(): number {
    const len = this.u32();
    const start = this.pos;
    this.pos = start + len;
    this.bounds();
    return start;
  }

  bytes(): Uint8Array {
    const start = this.delimited();
    return this.buf.subarray(start, this.pos);
  }

  /** A string; `strict`: the field has UTF-8 validation (fromBinary then throws on invalid UTF-8). */
  string(strict: boolean): string {
    const start = this.delimited();
    const end = this.pos;
    const buf = this.buf;
    if (start === end) return "";
    for (let i = start; i < end; i++) {
      if (buf[i]! >= 0x80) return getTextEncoding().decodeUtf8(buf.subarray(start, end), strict);
    }
    this.text ??= Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    return this.text.latin1Slice(start, end);
  }

  /** The end of a length-delimited message field (its length read; not checked against the buffer, as in fromBinary). */
  end(): number {
    const len = this.u32();
    return this.pos + len;
  }

  /** Reads an unknown field after its tag into `into` (created when undefined), as fromBinary keeps it. */
  unknown(tag: number, depth: number, into: UnknownField[] | undefined): UnknownField[] {
    const start = this.pos;
    this.skip(tag & 7, tag >>> 3, RECURSION_LIMIT - depth);
    const field: UnknownField = { no: tag >>> 3, wireType: tag & 7, data: this.buf.subarray(start, this.pos) };
    if (into === undefined) return [field];
    into.push(field);
    return into;
  }

  /** BinaryReader.skip, step for step. */
  private skip(wireType: number, fieldNo: number, recursionLimit: number): void {
    switch (wireType) {
      case 0:
        while (this.buf[this.pos++]! & 0x80) {
          // the rest of the varint
        }
        break;
      case 1:
        this.pos += 8;
        break;
      case 5:
        this.pos += 4;
        break;
      case 2: {
        const len = this.u32(); // before reading pos: `this.pos += this.u32()` would add to the old position
        this.pos += len;
        break;
      }
      case 3:
        if (recursionLimit <= 0) throw new Error("maximum recursion depth reached");
        for (;;) {
          const t = this.tag();
          if ((t & 7) === 4) {
            if (t >>> 3 !== fieldNo) throw new Error("invalid end group tag");
            break;
          }
          this.skip(t & 7, t >>> 3, recursionLimit - 1);
        }
        break;
      default:
        throw new Error(`cant skip wire type ${wireType}`);
    }
    this.bounds();
  }
}

declare global {
  interface Buffer {
    /** Node's Buffer.prototype.latin1Slice (what buf.toString("latin1", start, end) calls). */
    latin1Slice(start: number, end: number): string;
  }
}
