/**
 * The generated encoder of one message (src/codec/protoc-gen-codec.ts): a size function and a
 * write function over src/codec/wire.ts, writing exactly protobuf-es toBinary's bytes (fields in
 * number order, proto3 implicit presence, packed repeated scalars). What the fast path does not
 * encode itself (maps, group encoding, unknown fields) makes the size pass throw FALLBACK, and
 * encodeMessage then calls toBinary.
 */
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { SCALARS, WIRE_DELIMITED, WIRE_VARINT } from "./scalar-code.js";

/** A varint's bytes, as the generated code writes a tag (`w.byte(…)` each). */
function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

interface FieldCode {
  size: string;
  write: string;
}

/** Size and write code for one field whose value is `v` and known to be set (except lists); `fn` names a message's functions. */
function fieldCode(f: DescField, v: string, fn: (m: DescMessage, pass: "size" | "write") => string): FieldCode {
  const tag = (wt: number) => varintBytes(((f.number << 3) | wt) >>> 0);
  const writeTag = (wt: number) => tag(wt).map((b) => `w.byte(${b});`).join(" ");
  /** A length-delimited payload whose length the size pass keeps in `s`: `k` is computed by `sizeOf`. */
  const nested = (sizeOf: string) => `{ const i = s.length; s.push(0); ${sizeOf} s[i] = k; n += ${tag(WIRE_DELIMITED).length} + delimited(k); }`;
  const message = (m: DescMessage, x: string): FieldCode => ({
    size: nested(`const k = ${fn(m, "size")}(${x}, s);`),
    write: `${writeTag(WIRE_DELIMITED)} w.u32(w.next()); ${fn(m, "write")}(${x}, w);`,
  });
  switch (f.fieldKind) {
    case "map":
      return { size: `if (Object.keys(${v}).length > 0) throw FALLBACK; // maps: toBinary`, write: "" };
    case "message":
      if (f.delimitedEncoding) return { size: "throw FALLBACK; // group encoding: toBinary", write: "" };
      return message(f.message, v);
    case "list": {
      if (f.listKind === "message") {
        if (f.delimitedEncoding) return { size: `if (${v}.length > 0) throw FALLBACK; // group encoding: toBinary`, write: "" };
        const c = message(f.message, "x");
        return { size: `for (const x of ${v}) ${c.size}`, write: `for (const x of ${v}) { ${c.write} }` };
      }
      const t = SCALARS[f.listKind === "enum" ? ScalarType.INT32 : f.scalar];
      if (f.packed) {
        return {
          size: `if (${v}.length > 0) ${nested(`let k = 0; for (const x of ${v}) k += ${t.size("x")};`)}`,
          write: `if (${v}.length > 0) { ${writeTag(WIRE_DELIMITED)} w.u32(w.next()); for (const x of ${v}) ${t.write("x")} }`,
        };
      }
      return { size: `for (const x of ${v}) n += ${tag(t.wire).length} + ${t.size("x")};`, write: `for (const x of ${v}) { ${writeTag(t.wire)} ${t.write("x")} }` };
    }
    case "enum":
      return { size: `n += ${tag(WIRE_VARINT).length} + i32Size(${v});`, write: `${writeTag(WIRE_VARINT)} w.i32(${v});` };
    case "scalar": {
      const t = SCALARS[f.scalar];
      return { size: `n += ${tag(t.wire).length} + ${t.size(v)};`, write: `${writeTag(t.wire)} ${t.write(v)}` };
    }
  }
}

/** The presence condition protobuf-es's isFieldSet applies to a non-oneof field, or undefined for lists and maps. */
function isSet(f: DescField, v: string): string | undefined {
  if (f.fieldKind === "list" || f.fieldKind === "map") return undefined;
  if (f.fieldKind === "message" || f.presence !== 2 /* IMPLICIT */) return `${v} !== undefined`;
  if (f.fieldKind === "enum") return `${v} !== ${f.enum.values[0]!.number}`;
  return SCALARS[f.scalar].isSet(v);
}

/** The bodies of a message's size function `(m, s): number` and write function `(m, w): void`, one statement a line. */
export function encoderBodies(m: DescMessage, fn: (m: DescMessage, pass: "size" | "write") => string): { size: string[]; write: string[] } {
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
        const c = fieldCode(member, `${o}.value`, fn);
        size.push(`  case "${member.localName}": { ${c.size} break; }`);
        write.push(`  case "${member.localName}": { ${c.write} break; }`);
      }
      size.push("}");
      write.push("}");
      continue;
    }
    const v = `m.${f.localName}`;
    const c = fieldCode(f, v, fn);
    const cond = isSet(f, v);
    size.push(cond === undefined ? c.size : `if (${cond}) ${c.size.startsWith("{") ? c.size : `{ ${c.size} }`}`);
    if (c.write) write.push(cond === undefined ? c.write : `if (${cond}) { ${c.write} }`);
  }
  const usesS = size.some((l) => /\bs\.push\(/.test(l));
  return {
    size: [
      "if (m.$unknown !== undefined && m.$unknown.length > 0) throw FALLBACK; // unknown fields: toBinary",
      ...(usesS ? [] : ["void s;"]),
      `${size.some((l) => l.includes("n +=")) ? "let" : "const"} n = 0;`,
      ...size,
      "return n;",
    ],
    write,
  };
}
