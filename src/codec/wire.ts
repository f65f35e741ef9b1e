/**
 * The runtime of the generated binary encoders (gen/convmark/v1/binary_encoders.ts, written by
 * src/codec/protoc-gen-codec.ts): a two-pass protobuf writer. The size pass computes every
 * message's length (nested message and packed lengths are kept in `sizes`, in the order the write
 * pass needs them); the write pass fills one preallocated buffer. Bytes are the same as protobuf-es
 * toBinary's: fields in number order, proto3 implicit presence, packed repeated scalars, UTF-8 with
 * lone surrogates as U+FFFD (what TextEncoder and Buffer both do). A value toBinary would refuse or
 * treat specially (a 64-bit integer out of range, a non-integer int32, a message with unknown
 * fields, a map) makes the size pass throw FALLBACK, and encodeMessage then calls toBinary.
 */

/** Thrown by a size pass for a value the fast path does not encode; the caller uses toBinary. */
export const FALLBACK: unique symbol = Symbol("convmark.codec.fallback");

const MAX_U64 = 0xffffffffffffffffn;
const MAX_I64 = 0x7fffffffffffffffn;
const MIN_I64 = -0x8000000000000000n;
const FLOAT32_MAX = 3.4028234663852886e38;

/** Varint length of a uint32. */
export function u32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** A uint32 as protobuf-es accepts it (an integer in 0..2^32-1), else FALLBACK. */
export function u32(v: number): number {
  if (v >>> 0 !== v) throw FALLBACK;
  return v;
}

/** An int32 as protobuf-es accepts it (an integer in -2^31..2^31-1), else FALLBACK. */
export function i32(v: number): number {
  if ((v | 0) !== v) throw FALLBACK;
  return v;
}

/** Varint length of an int32 (negative values take 10 bytes, sign-extended to 64 bits). */
export function i32Size(v: number): number {
  return i32(v) < 0 ? 10 : u32Size(v);
}

/** Zigzag-encoded sint32, validated. */
export function zz32(v: number): number {
  if ((v | 0) !== v) throw FALLBACK;
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

function big(v: bigint | string | number): bigint {
  if (typeof v === "bigint") return v;
  try {
    return BigInt(v);
  } catch {
    throw FALLBACK;
  }
}

/** A uint64 value as an unsigned bigint, validated like protobuf-es's uParse. */
export function u64(v: bigint | string | number): bigint {
  const b = big(v);
  if (b < 0n || b > MAX_U64) throw FALLBACK;
  return b;
}

/** An int64 value as the unsigned bigint of its two's complement, validated like protobuf-es's parse. */
export function i64(v: bigint | string | number): bigint {
  const b = big(v);
  if (b < MIN_I64 || b > MAX_I64) throw FALLBACK;
  return b < 0n ? b + 0x10000000000000000n : b;
}

/** Zigzag-encoded sint64 as an unsigned bigint. */
export function zz64(v: bigint | string | number): bigint {
  const b = big(v);
  if (b < MIN_I64 || b > MAX_I64) throw FALLBACK;
  return b < 0n ? -2n * b - 1n : 2n * b;
}

/** A float as protobuf-es accepts it (a number within float32 range, or not finite). */
export function f32(v: number): number {
  if (typeof v !== "number" || (Number.isFinite(v) && (v > FLOAT32_MAX || v < -FLOAT32_MAX))) throw FALLBACK;
  return v;
}

/** Varint length of an unsigned 64-bit value (already validated). */
export function u64Size(v: bigint): number {
  if (v < 0x80000000n) return u32Size(Number(v));
  let n = 5;
  for (let x = v >> 35n; x > 0n; x >>= 7n) n++;
  return n;
}

/** UTF-8 length of a string, as TextEncoder encodes it. */
export function strSize(s: string): number {
  if (typeof s !== "string") throw FALLBACK;
  const n = s.length;
  if (n > 64) return Buffer.byteLength(s, "utf8");
  let b = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      b += 1;
      continue;
    }
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        b += 2;
        i++;
        continue;
      }
    }
    b += 2;
  }
  return b;
}

/** A double as the fast path writes it (a number; toBinary converts anything else). */
export function f64(v: number): number {
  if (typeof v !== "number") throw FALLBACK;
  return v;
}

/** Size of a length-delimited field's payload plus its length prefix. */
export function delimited(len: number): number {
  return u32Size(len) + len;
}

/** Bytes of a `bytes` field value, or FALLBACK for anything toBinary would not write as bytes. */
export function bytesLen(v: Uint8Array): number {
  if (!(v instanceof Uint8Array)) throw FALLBACK;
  return v.byteLength;
}

/** A position in a buffer, with the DataView the fixed-width types go through (Writer, and Reader of src/codec/reader.ts). */
export abstract class Cursor {
  abstract readonly buf: Uint8Array;
  pos = 0;
  private dv: DataView | undefined;

  /** Made on first use (no fixed-width type in convmark.v1 today). */
  get view(): DataView {
    return (this.dv ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  /** The position of a fixed-width value of `width` bytes (read or written through `view`), moving past it. */
  at(width: number): number {
    const p = this.pos;
    this.pos = p + width;
    return p;
  }
}

/** The write pass: one buffer of exactly the computed size, the sizes of the size pass. */
export class Writer extends Cursor {
  readonly buf: Buffer;
  si = 0;

  constructor(
    size: number,
    readonly sizes: number[],
  ) {
    super();
    // Not Buffer.allocUnsafe: its pooled slices share an 8 KiB ArrayBuffer, and callers cache
    // encoded messages (watch-route.ts), which would keep whole pools alive.
    this.buf = Buffer.allocUnsafeSlow(size);
  }

  /** The next length kept by the size pass (a nested message or a packed field). */
  next(): number {
    return this.sizes[this.si++]!;
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** Unsigned varint of a number in 0..2^32-1 (tags, lengths, uint32, non-negative int32). */
  u32(v: number): void {
    const buf = this.buf;
    let p = this.pos;
    while (v > 0x7f) {
      buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[p++] = v;
    this.pos = p;
  }

  /** int32: negative values as 10-byte sign-extended varints. */
  i32(v: number): void {
    if (v >= 0) this.u32(v);
    else this.split64(v >>> 0, 0xffffffff);
  }

  /** Unsigned 64-bit varint (validated by u64/i64/zz64). */
  u64(v: bigint): void {
    if (v < 0x100000000n) this.u32(Number(v));
    else this.split64(Number(v & 0xffffffffn), Number(v >> 32n));
  }

  private split64(lo: number, hi: number): void {
    const buf = this.buf;
    let p = this.pos;
    while (hi > 0 || lo > 0x7f) {
      buf[p++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[p++] = lo;
    this.pos = p;
  }

  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  /** A string with its length prefix. */
  str(s: string): void {
    const n = s.length;
    if (n > 42) {
      // Up to 3 bytes per UTF-16 unit: longer strings may need a longer length prefix.
      const len = Buffer.byteLength(s, "utf8");
      this.u32(len);
      this.buf.write(s, this.pos, len, "utf8");
      this.pos += len;
      return;
    }
    const buf = this.buf;
    const start = this.pos;
    let p = start + 1;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        buf[p++] = c;
      } else if (c < 0x800) {
        buf[p++] = 0xc0 | (c >> 6);
        buf[p++] = 0x80 | (c & 0x3f);
      } else {
        if (c >= 0xd800 && c < 0xe000) {
          const d = c < 0xdc00 && i + 1 < n ? s.charCodeAt(i + 1) : 0;
          if (d >= 0xdc00 && d < 0xe000) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            buf[p++] = 0xf0 | (c >> 18);
            buf[p++] = 0x80 | ((c >> 12) & 0x3f);
            buf[p++] = 0x80 | ((c >> 6) & 0x3f);
            buf[p++] = 0x80 | (c & 0x3f);
            continue;
          }
          c = 0xfffd; // a lone surrogate
        }
        buf[p++] = 0xe0 | (c >> 12);
        buf[p++] = 0x80 | ((c >> 6) & 0x3f);
        buf[p++] = 0x80 | (c & 0x3f);
      }
    }
    buf[start] = p - start - 1;
    this.pos = p;
  }

  bytes(v: Uint8Array): void {
    this.u32(v.byteLength);
    this.buf.set(v, this.pos);
    this.pos += v.byteLength;
  }
}

/** Runs a generated size/write pair: the bytes, or undefined when the size pass fell back. */
export function encodeWith<T>(m: T, size: (m: T, s: number[]) => number, write: (m: T, w: Writer) => void): Uint8Array | undefined {
  const sizes: number[] = [];
  let n: number;
  try {
    n = size(m, sizes);
  } catch (e) {
    if (e === FALLBACK) return undefined;
    throw e;
  }
  const w = new Writer(n, sizes);
  write(m, w);
  if (w.pos !== n || w.si !== sizes.length) throw new Error(`binary encoder wrote ${w.pos} of ${n} bytes`);
  return w.buf;
}
