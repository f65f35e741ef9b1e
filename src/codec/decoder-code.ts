/**
 * The generated decoder of one message (src/codec/protoc-gen-codec.ts): a function over
 * src/codec/reader.ts that builds exactly the object protobuf-es's fromBinary builds
 * (node_modules/@bufbuild/protobuf/dist/esm/from-binary.js, create.js):
 * - the zero message of create(): `$typeName`, then every implicit-presence field and oneof in
 *   declaration order; proto3 `optional` and message fields appear only when read;
 * - a known field is read as its declared type whatever the wire type says (as readField does);
 *   repeated scalars are packed exactly when the wire type is length-delimited, and both forms
 *   append; the last singular scalar wins; a repeated singular message merges into the earlier one,
 *   a oneof message merges only into the same case;
 * - unknown fields go to `$unknown` in wire order (skipped as BinaryReader.skip does);
 * - the recursion limit of 100 (depth counted as readMessage counts it).
 * What fromBinary builds differently (maps, groups, closed enums, wrapper and Struct fields,
 * jstype=JS_STRING, presence through the prototype chain) is declined: such a message, and every
 * message that reaches one, gets no decoder, and decodeMessage uses fromBinary for it.
 */
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { SCALARS } from "./scalar-code.js";

const IMPLICIT = 2;
const EDITION_PROTO3 = 999;

function fieldDecline(f: DescField): string | undefined {
  if (f.fieldKind === "map") return "map field";
  if ((f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) && f.delimitedEncoding) return "group encoding";
  if ((f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum")) && !f.enum.open) return "closed enum";
  if ((f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar")) && f.longAsString) return "jstype = JS_STRING";
  if (f.fieldKind === "message" && !f.oneof && isWrapperDesc(f.message)) return "wrapper type (unwrapped by protobuf-es)";
  if (f.fieldKind === "message" && f.message.typeName === "google.protobuf.Struct" && f.parent.typeName !== "google.protobuf.Value") return "google.protobuf.Struct (a JSON object in protobuf-es)";
  return undefined;
}

/** Why this message's own fields need fromBinary (not what it reaches), or undefined. */
function ownDecline(m: DescMessage): string | undefined {
  // create.js needsPrototypeChain: proto2, or editions with explicit-presence scalars.
  if (m.file.edition !== EDITION_PROTO3 && (m.file.edition === 998 || m.fields.some((f) => f.presence !== IMPLICIT && f.fieldKind !== "message" && !f.oneof))) {
    return "presence through the prototype chain";
  }
  for (const f of m.fields) {
    const why = fieldDecline(f);
    if (why) return `${f.name}: ${why}`;
  }
  return undefined;
}

/** For every message of `messages` that gets no generated decoder, why (reaching a declined message declines). */
export function declinedDecoders(messages: readonly DescMessage[]): Map<DescMessage, string> {
  const out = new Map<DescMessage, string>();
  for (const m of messages) {
    const why = ownDecline(m);
    if (why) out.set(m, why);
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const m of messages) {
      if (out.has(m)) continue;
      const sub = m.fields.find((f) => f.message !== undefined && out.has(f.message));
      if (sub) {
        out.set(m, `reaches ${sub.message!.typeName}`);
        changed = true;
      }
    }
  }
  return out;
}

/** The call decoding a nested `sub` message whose length comes next, merging into `into` when given. */
function nestedCall(sub: DescMessage, fn: (m: DescMessage) => string, into?: string): string {
  return `${fn(sub)}(r, r.end(), depth + 1, "${sub.typeName}"${into ? `, ${into}` : ""})`;
}

function read(f: DescField): string {
  return f.fieldKind === "enum" ? SCALARS[ScalarType.INT32].read(false) : SCALARS[(f as { scalar: ScalarType }).scalar].read(f.utf8Validation);
}

/** The statement of one field's case (the tag is in `tag`). */
function fieldStatement(f: DescField, fn: (m: DescMessage) => string): string {
  const v = `m.${f.localName}`;
  if (f.oneof) {
    const o = `m.${f.oneof.localName}`;
    const value = f.fieldKind === "message" ? nestedCall(f.message, fn, `${o}.case === "${f.localName}" ? ${o}.value : undefined`) : read(f);
    return `${o} = { case: "${f.localName}", value: ${value} };`;
  }
  switch (f.fieldKind) {
    case "message":
      return `${v} = ${nestedCall(f.message, fn, v)};`;
    case "list": {
      if (f.listKind === "message") return `${v}.push(${nestedCall(f.message, fn)});`;
      const item = f.listKind === "enum" ? SCALARS[ScalarType.INT32].read(false) : SCALARS[f.scalar].read(f.utf8Validation);
      if (f.listKind === "scalar" && (f.scalar === ScalarType.STRING || f.scalar === ScalarType.BYTES)) return `${v}.push(${item});`;
      // readListField: packed exactly when the wire type is length-delimited, whatever the field declares.
      return `if ((tag & 7) === 2) { const e = r.end(); while (r.pos < e) ${v}.push(${item}); } else ${v}.push(${item});`;
    }
    case "map":
      throw new Error(`${f.toString()}: maps are declined`);
    default:
      return `${v} = ${read(f)};`;
  }
}

/** create()'s zero message literal, without `$typeName` (the decoder's parameter `t`). */
function zeroMembers(m: DescMessage): string {
  const parts: string[] = [];
  for (const member of m.members) {
    if (member.kind === "oneof") parts.push(`${member.localName}: { case: undefined }`);
    else if (member.fieldKind === "list") parts.push(`${member.localName}: []`);
    else if (member.presence !== IMPLICIT || member.fieldKind === "message" || member.fieldKind === "map") continue;
    else parts.push(`${member.localName}: ${member.fieldKind === "enum" ? String(member.enum.values[0]!.number) : SCALARS[member.scalar].zero}`);
  }
  return parts.map((p) => `, ${p}`).join("");
}

/**
 * The longest chain of nested messages from `messages` (a message nested in itself: Infinity). When
 * it stays under the recursion limit, fromBinary's depth check can never fire and the decoders
 * leave it out.
 */
export function nestingDepth(messages: readonly DescMessage[]): number {
  const depth = new Map<DescMessage, number>();
  const visit = (m: DescMessage, path: Set<DescMessage>): number => {
    if (path.has(m)) return Infinity;
    const known = depth.get(m);
    if (known !== undefined) return known;
    path.add(m);
    const d = 1 + Math.max(0, ...m.fields.map((f) => (f.message ? visit(f.message, path) : 0)));
    path.delete(m);
    depth.set(m, d);
    return d;
  };
  return Math.max(0, ...messages.map((m) => visit(m, new Set())));
}

/**
 * The body of `(r: Reader, end: number, depth: number, t: <type name>, into?: <shape>): <shape>`:
 * decodes up to `end` into `into` (merging) or a new message of type name `t`, at nesting `depth`
 * (1 at the top, as fromBinary counts); `checkDepth`: messages nest deep enough to reach the limit.
 */
export function decoderBody(m: DescMessage, shape: string, fn: (m: DescMessage) => string, checkDepth: boolean): string[] {
  const cases = [...m.fields].sort((a, b) => a.number - b.number).map((f) => `  case ${f.number}: ${fieldStatement(f, fn)} break;`);
  // A loop per message, written out (not a shared loop calling a field function per message: that
  // call cannot be inlined, and measured 20-40% slower). `break` leaves the switch, not the loop.
  return [
    ...(checkDepth ? ["if (depth > RECURSION_LIMIT) tooDeep(t);"] : []),
    `const m: ${shape} = into ?? { $typeName: t${zeroMembers(m)} };`,
    "let u = m.$unknown;",
    "for (let tag = 0; r.pos < end; ) switch ((tag = r.tag()) >>> 3) {",
    ...cases,
    "  default: u = r.unknown(tag, depth, u);",
    "}",
    "return u === undefined ? m : withUnknown(m, u);",
  ];
}
