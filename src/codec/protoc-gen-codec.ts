/**
 * A protoc/buf plugin writing fast binary encoders (gen/convmark/v1/binary_encoders.ts) for every
 * message of the requested proto packages (option `package=<name>`, repeatable) and every message
 * they reach (google.protobuf.Timestamp, google.rpc.Status, google.protobuf.Any). Each message gets
 * a size function and a write function over src/codec/wire.ts; the file exports `binaryEncoders`,
 * keyed by the protobuf-es schema, which src/codec/encode.ts consults before toBinary. What the
 * generated code does not encode itself (maps, group encoding, unknown fields, values toBinary
 * would reject) makes it return undefined, and toBinary is used: the output is always
 * toBinary's bytes (test/codec/encode.test.ts checks them against each other).
 */
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { createEcmaScriptPlugin, runNodeJs, type GeneratedFile, type Printable } from "@bufbuild/protoplugin";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { reachableMessages } from "./reachable.js";

const WIRE_VARINT = 0;
const WIRE_64 = 1;
const WIRE_DELIMITED = 2;
const WIRE_32 = 5;

function wireType(t: ScalarType): number {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WIRE_DELIMITED;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WIRE_64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WIRE_32;
    default:
      return WIRE_VARINT;
  }
}

function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** The size expression of one scalar value `v` (without its tag). */
function scalarSize(t: ScalarType, v: string): string {
  switch (t) {
    case ScalarType.STRING:
      return `delimited(strSize(${v}))`;
    case ScalarType.BYTES:
      return `delimited(bytesLen(${v}))`;
    case ScalarType.BOOL:
      return "1";
    case ScalarType.INT32:
      return `i32Size(${v})`;
    case ScalarType.UINT32:
      return `u32Size(u32(${v}))`;
    case ScalarType.SINT32:
      return `u32Size(zz32(${v}))`;
    case ScalarType.INT64:
      return `u64Size(i64(${v}))`;
    case ScalarType.UINT64:
      return `u64Size(u64(${v}))`;
    case ScalarType.SINT64:
      return `u64Size(zz64(${v}))`;
    case ScalarType.FIXED32:
      return `(u32(${v}), 4)`;
    case ScalarType.SFIXED32:
      return `(i32Size(${v}), 4)`;
    case ScalarType.FLOAT:
      return `(f32(${v}), 4)`;
    case ScalarType.DOUBLE:
      return `(f64(${v}), 8)`;
    case ScalarType.FIXED64:
      return `(u64(${v}), 8)`;
    case ScalarType.SFIXED64:
      return `(i64(${v}), 8)`;
  }
}

/** The write statement of one scalar value `v` (without its tag). */
function scalarWrite(t: ScalarType, v: string): string {
  switch (t) {
    case ScalarType.STRING:
      return `w.str(${v});`;
    case ScalarType.BYTES:
      return `w.bytes(${v});`;
    case ScalarType.BOOL:
      return `w.bool(${v});`;
    case ScalarType.INT32:
      return `w.i32(${v});`;
    case ScalarType.UINT32:
      return `w.u32(${v});`;
    case ScalarType.SINT32:
      return `w.u32(zz32(${v}));`;
    case ScalarType.INT64:
      return `w.u64(i64(${v}));`;
    case ScalarType.UINT64:
      return `w.u64(u64(${v}));`;
    case ScalarType.SINT64:
      return `w.u64(zz64(${v}));`;
    case ScalarType.FIXED32:
      return `w.fixed32(${v});`;
    case ScalarType.SFIXED32:
      return `w.sfixed32(${v});`;
    case ScalarType.FLOAT:
      return `w.float(${v});`;
    case ScalarType.DOUBLE:
      return `w.double(${v});`;
    case ScalarType.FIXED64:
      return `w.fixed64(u64(${v}));`;
    case ScalarType.SFIXED64:
      return `w.fixed64(i64(${v}));`;
  }
}

/** protobuf-es's isScalarZeroValue, negated, as an expression on `v`. */
function scalarIsSet(t: ScalarType, v: string): string {
  switch (t) {
    case ScalarType.STRING:
      return `${v} !== ""`;
    case ScalarType.BOOL:
      return `${v} !== false`;
    case ScalarType.BYTES:
      return `(!(${v} instanceof Uint8Array) || ${v}.byteLength > 0)`;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return `!Object.is(${v}, 0)`;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      // Loose, as protobuf-es: 0n, 0 and "0" are all the zero value.
      return `(${v} as unknown) != 0`;
    default:
      return `${v} !== 0`;
  }
}

const fnName = (m: DescMessage, pass: "size" | "write") => `${pass}_${m.typeName.replace(/\./g, "_")}`;

interface FieldCode {
  size: string[];
  write: string[];
}

/** Size and write code for one field whose value is `v` and known to be set (except lists). */
function fieldCode(f: DescField, v: string): FieldCode {
  const tag = (wt: number) => varintBytes(((f.number << 3) | wt) >>> 0);
  const writeTag = (wt: number) => tag(wt).map((b) => `w.byte(${b});`).join(" ");
  const message = (m: DescMessage, x: string): FieldCode => ({
    size: [`{ const i = s.length; s.push(0); const k = ${fnName(m, "size")}(${x}, s); s[i] = k; n += ${tag(WIRE_DELIMITED).length} + delimited(k); }`],
    write: [`${writeTag(WIRE_DELIMITED)} w.u32(w.next()); ${fnName(m, "write")}(${x}, w);`],
  });
  switch (f.fieldKind) {
    case "map":
      return { size: [`if (Object.keys(${v}).length > 0) throw FALLBACK; // maps: toBinary`], write: [] };
    case "message":
      if (f.delimitedEncoding) return { size: ["throw FALLBACK; // group encoding: toBinary"], write: [] };
      return message(f.message, v);
    case "list": {
      if (f.listKind === "message") {
        if (f.delimitedEncoding) return { size: [`if (${v}.length > 0) throw FALLBACK; // group encoding: toBinary`], write: [] };
        const c = message(f.message, "x");
        return { size: [`for (const x of ${v}) ${c.size[0]}`], write: [`for (const x of ${v}) { ${c.write[0]} }`] };
      }
      const t = f.listKind === "enum" ? ScalarType.INT32 : f.scalar;
      if (f.packed) {
        return {
          size: [
            `if (${v}.length > 0) { const i = s.length; s.push(0); let k = 0; for (const x of ${v}) k += ${scalarSize(t, "x")}; s[i] = k; n += ${tag(WIRE_DELIMITED).length} + delimited(k); }`,
          ],
          write: [`if (${v}.length > 0) { ${writeTag(WIRE_DELIMITED)} w.u32(w.next()); for (const x of ${v}) ${scalarWrite(t, "x")} }`],
        };
      }
      return {
        size: [`for (const x of ${v}) n += ${tag(wireType(t)).length} + ${scalarSize(t, "x")};`],
        write: [`for (const x of ${v}) { ${writeTag(wireType(t))} ${scalarWrite(t, "x")} }`],
      };
    }
    case "enum":
      return { size: [`n += ${tag(WIRE_VARINT).length} + i32Size(${v});`], write: [`${writeTag(WIRE_VARINT)} w.i32(${v});`] };
    case "scalar":
      return {
        size: [`n += ${tag(wireType(f.scalar)).length} + ${scalarSize(f.scalar, v)};`],
        write: [`${writeTag(wireType(f.scalar))} ${scalarWrite(f.scalar, v)}`],
      };
  }
}

/** The presence condition protobuf-es's isFieldSet applies to a non-oneof field, or undefined for lists and maps. */
function isSet(f: DescField, v: string): string | undefined {
  if (f.fieldKind === "list" || f.fieldKind === "map") return undefined;
  if (f.fieldKind === "message" || f.presence !== 2 /* IMPLICIT */) return `${v} !== undefined`;
  if (f.fieldKind === "enum") return `${v} !== ${f.enum.values[0]!.number}`;
  return scalarIsSet(f.scalar, v);
}

const RUNTIME = ["FALLBACK", "Writer", "delimited", "strSize", "bytesLen", "i32Size", "u32Size", "u32", "zz32", "u64Size", "i64", "u64", "zz64", "f32", "f64"];
const RUNTIME_RE = new RegExp(`\\b(${RUNTIME.join("|")})\\b`);

/** A line of generated code with its runtime names as import symbols (so only the used ones are imported). */
function printable(g: GeneratedFile, line: string): Printable[] {
  return line.split(RUNTIME_RE).map((part, i) => (i % 2 === 1 ? g.import(part, "../src/codec/wire.js", part === "Writer") : part));
}

function printMessage(g: GeneratedFile, m: DescMessage): void {
  const shape = g.importShape(m);
  const size: string[] = [];
  const write: string[] = [];
  const doneOneofs = new Set<string>();
  for (const f of [...m.fields].sort((a, b) => a.number - b.number)) {
    if (f.oneof) {
      // Only one member can be set: a switch at the oneof's first field in number order. protobuf-es
      // writes in field number order, and the single set member is the only one written.
      if (doneOneofs.has(f.oneof.localName)) continue;
      doneOneofs.add(f.oneof.localName);
      const o = `m.${f.oneof.localName}`;
      size.push(`switch (${o}.case) {`);
      write.push(`switch (${o}.case) {`);
      for (const member of f.oneof.fields) {
        const c = fieldCode(member, `${o}.value`);
        size.push(`  case "${member.localName}": { ${c.size.join(" ")} break; }`);
        write.push(`  case "${member.localName}": { ${c.write.join(" ")} break; }`);
      }
      size.push("}");
      write.push("}");
      continue;
    }
    const v = `m.${f.localName}`;
    const c = fieldCode(f, v);
    const cond = isSet(f, v);
    if (cond === undefined) {
      size.push(...c.size);
      write.push(...c.write);
    } else {
      size.push(`if (${cond}) { ${c.size.join(" ")} }`);
      if (c.write.length) write.push(`if (${cond}) { ${c.write.join(" ")} }`);
    }
  }
  const print = (line: string) => g.print(...printable(g, line));
  g.print(g.jsDoc(`Encoded size of ${m.typeName}; pushes nested lengths onto \`s\` in write order.`));
  g.print("function ", fnName(m, "size"), "(m: ", shape, ", s: number[]): number {");
  print("  if (m.$unknown !== undefined && m.$unknown.length > 0) throw FALLBACK; // unknown fields: toBinary");
  if (!size.some((l) => /\bs\.push\(/.test(l))) print("  void s;");
  print(`  ${size.some((l) => l.includes("n +=")) ? "let" : "const"} n = 0;`);
  for (const line of size) print(`  ${line}`);
  print("  return n;");
  print("}");
  print("");
  g.print("function ", fnName(m, "write"), `(${write.length ? "m" : "_m"}: `, shape, ...printable(g, `, ${write.length ? "w" : "_w"}: Writer): void {`));
  for (const line of write) print(`  ${line}`);
  print("}");
  print("");
}

const plugin = createEcmaScriptPlugin<{ packages: string[] }>({
  name: "protoc-gen-convmark-codec",
  version: "v1",
  parseOptions(raw) {
    return { packages: raw.filter((o) => o.key === "package").map((o) => o.value) };
  },
  generateTs(schema) {
    const files = schema.files.filter((f) => schema.options.packages.length === 0 || schema.options.packages.includes(f.proto.package));
    if (files.length === 0) return;
    const roots = files.flatMap((f) => [...nestedTypes(f)].filter((t): t is DescMessage => t.kind === "message"));
    const messages = reachableMessages(roots);
    const first = files[0]!;
    const g = schema.generateFile(`${first.name.replace(/\/[^/]+$/, "")}/binary_encoders.ts`);
    g.preamble(first);
    for (const m of messages) printMessage(g, m);
    const desc = g.import("DescMessage", "@bufbuild/protobuf", true);
    const message = g.import("Message", "@bufbuild/protobuf", true);
    const encodeWith = g.import("encodeWith", "../src/codec/wire.js");
    g.print(g.jsDoc("Binary encoders of every message above, byte-identical to protobuf-es's toBinary; an encoder's undefined means: use toBinary."));
    g.print("export const binaryEncoders: ReadonlyMap<", desc, ", (m: ", message, ") => Uint8Array | undefined> = new Map<", desc, ", (m: ", message, ") => Uint8Array | undefined>([");
    for (const m of messages) {
      g.print("  [", g.importSchema(m), ", (m) => ", encodeWith, "(m as ", g.importShape(m), ", ", fnName(m, "size"), ", ", fnName(m, "write"), ")],");
    }
    g.print("]);");
  },
});

runNodeJs(plugin);
