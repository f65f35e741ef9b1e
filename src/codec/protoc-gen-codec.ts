/**
 * A protoc/buf plugin writing fast binary codecs for every message of the requested proto packages
 * (option `package=<name>`, repeatable) and every message they reach (google.protobuf.Timestamp,
 * google.rpc.Status, google.protobuf.Any):
 * - gen/…/binary_encoders.ts: `binaryEncoders`, keyed by the protobuf-es schema, a size and a
 *   write function per message over src/codec/wire.ts (src/codec/encoder-code.ts), byte-identical
 *   to toBinary; src/codec/encode.ts consults it;
 * - gen/…/binary_decoders.ts: `binaryDecoders`, a decode function per message over
 *   src/codec/reader.ts (src/codec/decoder-code.ts), building exactly fromBinary's objects;
 *   src/codec/decode.ts consults it.
 * Messages whose functions would be the same text (the same fields, numbers and types, and the
 * same nested functions) share one function: the generated code says each thing once.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { createEcmaScriptPlugin, runNodeJs, type GeneratedFile, type Printable, type Schema } from "@bufbuild/protoplugin";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { declinedDecoders, decoderBody, nestingDepth } from "./decoder-code.js";
import { encoderBodies } from "./encoder-code.js";
import { RECURSION_LIMIT } from "./reader.js";
import { reachableMessages } from "./reachable.js";

const SHAPE = "__Shape__";

/** The function name serving `m` for `pass`. */
const fnName = (m: DescMessage, pass: string) => `${pass}_${m.typeName.replace(/\./g, "_")}`;

/**
 * Groups messages whose generated code is the same text: `code(m, rep)` renders m's functions with
 * nested messages named after `rep(nested)`. Iterated to a fixed point (two messages may become
 * equal once the messages they reach are grouped); returns each message's representative.
 */
function share(messages: readonly DescMessage[], code: (m: DescMessage, rep: (x: DescMessage) => DescMessage) => string): Map<DescMessage, DescMessage> {
  let rep = new Map(messages.map((m) => [m, m]));
  for (;;) {
    const byCode = new Map<string, DescMessage>();
    const next = new Map<DescMessage, DescMessage>();
    for (const m of messages) {
      const text = code(m, (x) => rep.get(x) ?? x);
      if (!byCode.has(text)) byCode.set(text, m);
      next.set(m, byCode.get(text)!);
    }
    if (messages.every((m) => next.get(m) === rep.get(m))) return next;
    rep = next;
  }
}

/**
 * Prints generated code: in its string parts, runtime names become imports from `runtime` (so only
 * those used are imported; `types` as type-only imports) and SHAPE becomes `shape`.
 */
function printer(g: GeneratedFile, runtime: string, names: readonly string[], types: readonly string[]) {
  const re = new RegExp(`(?<![.\\w])(${[...names, ...types, SHAPE].join("|")})\\b`);
  const expand = (text: string, shape: Printable): Printable[] =>
    text.split(re).map((part, i) => (i % 2 === 0 ? part : part === SHAPE ? shape : g.import(part, runtime, types.includes(part))));
  return (parts: string | Printable[], shape: Printable = []) =>
    g.print(...(typeof parts === "string" ? [parts] : parts).flatMap((p) => (typeof p === "string" ? expand(p, shape) : [p])));
}

/** `A | B | …`: the shapes of the messages a shared function serves. */
function unionShape(g: GeneratedFile, group: readonly DescMessage[]): Printable {
  return group.flatMap((m, i) => (i === 0 ? [g.importShape(m)] : [" | ", g.importShape(m)]));
}

function groups(messages: readonly DescMessage[], rep: Map<DescMessage, DescMessage>): Map<DescMessage, DescMessage[]> {
  const out = new Map<DescMessage, DescMessage[]>();
  for (const m of messages) out.set(rep.get(m)!, [...(out.get(rep.get(m)!) ?? []), m]);
  return out;
}

type Print = ReturnType<typeof printer>;

/** One generated function serving `group` (its shapes as SHAPE): a JSDoc naming them, the signature, the body. */
function printFunction(print: Print, group: readonly DescMessage[], signature: string, body: readonly string[], shape: Printable): void {
  print("");
  print(`/** ${group.map((m) => m.typeName).join(", ")} */`);
  print(`function ${signature} {`, shape);
  for (const line of body) print(`  ${line}`, shape);
  print("}");
}

/** The exported map from each message's schema to its generated function (`entry(m)`: the code after the schema). */
function printMap(g: GeneratedFile, print: Print, doc: string, name: string, type: (message: Printable) => Printable[], messages: readonly DescMessage[], entry: (m: DescMessage) => string): void {
  const desc = g.import("DescMessage", "@bufbuild/protobuf", true);
  const t = type(g.import("Message", "@bufbuild/protobuf", true));
  print("");
  g.print(g.jsDoc(doc));
  g.print(`export const ${name}: ReadonlyMap<`, desc, ", ", ...t, "> = new Map<", desc, ", ", ...t, ">([");
  for (const m of messages) print(["  [", g.importSchema(m), `, ${entry(m)}],`], g.importShape(m));
  g.print("]);");
}

function generateEncoders(g: GeneratedFile, messages: readonly DescMessage[]): void {
  const print = printer(g, "../src/codec/wire.js", ["FALLBACK", "delimited", "strSize", "bytesLen", "i32Size", "u32Size", "u32", "i32", "zz32", "u64Size", "i64", "u64", "zz64", "f32", "f64", "encodeWith"], ["Writer"]);
  const bodies = (m: DescMessage, rep: (x: DescMessage) => DescMessage) => encoderBodies(m, (x, pass) => fnName(rep(x), pass));
  const rep = share(messages, (m, r) => JSON.stringify(bodies(m, r)));
  print("// Size functions push nested lengths onto `s` in write order; write functions fill the buffer (src/codec/wire.ts).");
  for (const [first, group] of groups(messages, rep)) {
    const { size, write } = bodies(first, (x) => rep.get(x)!);
    const shape = unionShape(g, group);
    printFunction(print, group, `${fnName(first, "size")}(m: ${SHAPE}, s: number[]): number`, size, shape);
    printFunction(print, group, `${fnName(first, "write")}(${write.length ? "m" : "_m"}: ${SHAPE}, ${write.length ? "w" : "_w"}: Writer): void`, write, shape);
  }
  const fns = (m: DescMessage) => `${fnName(rep.get(m)!, "size")}, ${fnName(rep.get(m)!, "write")}`;
  printMap(g, print, "Binary encoders of every message above, byte-identical to protobuf-es's toBinary; an encoder's undefined means: use toBinary.", "binaryEncoders", (message) => ["(m: ", message, ") => Uint8Array | undefined"], messages, (m) => `(m) => encodeWith(m as ${SHAPE}, ${fns(m)})`);
}

function generateDecoders(g: GeneratedFile, messages: readonly DescMessage[]): void {
  const print = printer(g, "../src/codec/reader.js", ["RECURSION_LIMIT", "tooDeep", "withUnknown", "ZERO64", "Reader"], []);
  const declined = declinedDecoders(messages);
  const decodable = messages.filter((m) => !declined.has(m));
  const deepest = nestingDepth(decodable);
  const checkDepth = deepest >= RECURSION_LIMIT;
  const body = (m: DescMessage, rep: (x: DescMessage) => DescMessage) => decoderBody(m, SHAPE, (x) => fnName(rep(x), "decode"), checkDepth);
  const rep = share(decodable, (m, r) => body(m, r).join("\n"));
  print("// Each decoder reads up to `end` into `into` (merging) or a new message of type name `t`, at nesting `depth` (src/codec/reader.ts).");
  if (!checkDepth) print(`// Messages nest at most ${deepest} deep here: fromBinary's recursion limit (${RECURSION_LIMIT}) cannot be reached, and is not checked.`);
  for (const [m, why] of declined) print(`// ${m.typeName}: no decoder (${why}), fromBinary decodes it.`);
  for (const [first, group] of groups(decodable, rep)) {
    const signature = `${fnName(first, "decode")}(r: Reader, end: number, depth: number, t: (${SHAPE})["$typeName"], into?: ${SHAPE}): ${SHAPE}`;
    printFunction(print, group, signature, body(first, (x) => rep.get(x)!), unionShape(g, group));
  }
  const entry = (m: DescMessage) => `(b) => ${fnName(rep.get(m)!, "decode")}(new Reader(b), b.byteLength, 1, "${m.typeName}")`;
  printMap(g, print, "Binary decoders of every message above, returning what protobuf-es's fromBinary returns (and throwing where it throws).", "binaryDecoders", (message) => ["(bytes: Uint8Array) => ", message], decodable, entry);
}

const plugin = createEcmaScriptPlugin<{ packages: string[] }>({
  name: "protoc-gen-convmark-codec",
  version: "v1",
  parseOptions(raw) {
    return { packages: raw.filter((o) => o.key === "package").map((o) => o.value) };
  },
  generateTs(schema: Schema<{ packages: string[] }>) {
    const files = schema.files.filter((f) => schema.options.packages.length === 0 || schema.options.packages.includes(f.proto.package));
    if (files.length === 0) return;
    const roots = files.flatMap((f) => [...nestedTypes(f)].filter((t): t is DescMessage => t.kind === "message"));
    const messages = reachableMessages(roots);
    const first = files[0]!;
    const dir = first.name.replace(/\/[^/]+$/, "");
    const encoders = schema.generateFile(`${dir}/binary_encoders.ts`);
    encoders.preamble(first);
    generateEncoders(encoders, messages);
    const decoders = schema.generateFile(`${dir}/binary_decoders.ts`);
    decoders.preamble(first);
    generateDecoders(decoders, messages);
  },
});

runNodeJs(plugin);
