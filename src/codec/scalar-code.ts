/**
 * What the generated codecs (src/codec/protoc-gen-codec.ts) write for one scalar type, in one table:
 * its wire type, the size, write and read expressions over the runtimes (src/codec/wire.ts Writer
 * `w` and its size helpers, src/codec/reader.ts Reader `r`), and the "is set" test of proto3
 * implicit presence (protobuf-es's isScalarZeroValue, negated).
 */
import { ScalarType } from "@bufbuild/protobuf";

export const WIRE_VARINT = 0;
export const WIRE_64 = 1;
export const WIRE_DELIMITED = 2;
export const WIRE_32 = 5;

export interface ScalarCode {
  wire: number;
  /** Encoded size of the value `v` (without its tag). */
  size(v: string): string;
  /** The statement writing `v` (without its tag). */
  write(v: string): string;
  /** The expression reading one value; `strict`: the field validates UTF-8. */
  read(strict: boolean): string;
  /** `v` differs from the zero value (toBinary writes it). */
  isSet(v: string): string;
  /** The zero value, as create() sets it. */
  zero: string;
}

const int64Zero = "ZERO64";
const notZero = (v: string) => `${v} !== 0`;
// Loose, as protobuf-es: 0n, 0 and "0" are all the zero value.
const notZero64 = (v: string) => `(${v} as unknown) != 0`;
const notZeroFloat = (v: string) => `!Object.is(${v}, 0)`;

/** A fixed-width value through the runtime's DataView: `view.<get|set><Type>(at(width), …, true)`. */
function fixed(type: string, width: 4 | 8, check: (v: string) => string, isSet: (v: string) => string, zero: string): ScalarCode {
  return {
    wire: width === 4 ? WIRE_32 : WIRE_64,
    size: (v) => `(${check(v)}, ${width})`,
    write: (v) => `w.view.set${type}(w.at(${width}), ${check(v)}, true);`,
    read: () => `r.view.get${type}(r.at(${width}), true)`,
    isSet,
    zero,
  };
}

export const SCALARS: Record<ScalarType, ScalarCode> = {
  [ScalarType.STRING]: { wire: WIRE_DELIMITED, size: (v) => `delimited(strSize(${v}))`, write: (v) => `w.str(${v});`, read: (s) => `r.string(${s})`, isSet: (v) => `${v} !== ""`, zero: `""` },
  [ScalarType.BYTES]: {
    wire: WIRE_DELIMITED,
    size: (v) => `delimited(bytesLen(${v}))`,
    write: (v) => `w.bytes(${v});`,
    read: () => "r.bytes()",
    isSet: (v) => `(!(${v} instanceof Uint8Array) || ${v}.byteLength > 0)`,
    zero: "new Uint8Array(0)",
  },
  [ScalarType.BOOL]: { wire: WIRE_VARINT, size: () => "1", write: (v) => `w.bool(${v});`, read: () => "r.bool()", isSet: (v) => `${v} !== false`, zero: "false" },
  [ScalarType.INT32]: { wire: WIRE_VARINT, size: (v) => `i32Size(${v})`, write: (v) => `w.i32(${v});`, read: () => "r.int32()", isSet: notZero, zero: "0" },
  [ScalarType.UINT32]: { wire: WIRE_VARINT, size: (v) => `u32Size(u32(${v}))`, write: (v) => `w.u32(${v});`, read: () => "r.u32()", isSet: notZero, zero: "0" },
  [ScalarType.SINT32]: { wire: WIRE_VARINT, size: (v) => `u32Size(zz32(${v}))`, write: (v) => `w.u32(zz32(${v}));`, read: () => "r.sint32()", isSet: notZero, zero: "0" },
  [ScalarType.INT64]: { wire: WIRE_VARINT, size: (v) => `u64Size(i64(${v}))`, write: (v) => `w.u64(i64(${v}));`, read: () => "r.int64()", isSet: notZero64, zero: int64Zero },
  [ScalarType.UINT64]: { wire: WIRE_VARINT, size: (v) => `u64Size(u64(${v}))`, write: (v) => `w.u64(u64(${v}));`, read: () => "r.uint64()", isSet: notZero64, zero: int64Zero },
  [ScalarType.SINT64]: { wire: WIRE_VARINT, size: (v) => `u64Size(zz64(${v}))`, write: (v) => `w.u64(zz64(${v}));`, read: () => "r.sint64()", isSet: notZero64, zero: int64Zero },
  [ScalarType.FIXED32]: fixed("Uint32", 4, (v) => `u32(${v})`, notZero, "0"),
  [ScalarType.SFIXED32]: fixed("Int32", 4, (v) => `i32(${v})`, notZero, "0"),
  [ScalarType.FLOAT]: fixed("Float32", 4, (v) => `f32(${v})`, notZeroFloat, "0"),
  [ScalarType.DOUBLE]: fixed("Float64", 8, (v) => `f64(${v})`, notZeroFloat, "0"),
  // 64-bit fixed values go through DataView's BigUint64 with the two's complement of i64().
  [ScalarType.FIXED64]: { ...fixed("BigUint64", 8, (v) => `u64(${v})`, notZero64, int64Zero), read: () => "r.fixed64()" },
  [ScalarType.SFIXED64]: { ...fixed("BigUint64", 8, (v) => `i64(${v})`, notZero64, int64Zero), read: () => "r.sfixed64()" },
};
