/** Builds a request message from path bindings, query parameters and a JSON body. */
import { fromJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape, type Registry } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Route } from "./routes.js";
import type { Bindings } from "./template.js";

type Tree = { [k: string]: JsonValue | Tree };

/**
 * The request for `route`: the body first (all of it, or one field), then path variables, then
 * query parameters for every field neither of them bound. Throws INVALID_ARGUMENT ConnectErrors.
 */
export function buildRequest(
  route: Route,
  bindings: Bindings,
  query: URLSearchParams,
  body: JsonValue | undefined,
  registry?: Registry,
): MessageShape<DescMessage> {
  const input = route.method.input;
  let tree: Tree = {};
  if (route.body === "*") {
    if (body === undefined) body = {};
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid("the request body must be a JSON object");
    tree = { ...(body as Tree) };
  } else if (route.body) {
    if (body !== undefined) tree[route.body.jsonName] = body;
  }
  for (const [path, value] of bindings) {
    setLeaf(tree, route.pathFields.get(path)!, [value], `path variable ${path}`, true);
  }
  if (route.body === "*") {
    const first = query.keys().next();
    if (!first.done) throw invalid(`query parameter "${first.value}": this route takes every field from the body`);
  } else {
    const byKey = new Map<string, string[]>();
    for (const [k, v] of query) {
      const list = byKey.get(k);
      if (list) list.push(v);
      else byKey.set(k, [v]);
    }
    for (const [key, values] of byKey) {
      const chain = queryChain(input, key);
      if (!chain) throw invalid(`query parameter "${key}" is not a field of ${input.typeName}`);
      const top = chain[0]!;
      if (route.body !== undefined && top === route.body) throw invalid(`query parameter "${key}" is part of the body`);
      const dotted = chain.map((f) => f.name).join(".");
      if (route.pathFields.has(dotted)) throw invalid(`query parameter "${key}" is bound from the path`);
      setLeaf(tree, chain, values, `query parameter "${key}"`, false);
    }
  }
  try {
    return fromJson(input, tree as JsonObject, registry ? { registry } : {});
  } catch (e) {
    throw invalid((e as Error).message);
  }
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** Field chain for a query key: dotted, each part by JSON name or proto name. */
function queryChain(message: DescMessage, key: string): DescField[] | undefined {
  const chain: DescField[] = [];
  let m: DescMessage | undefined = message;
  for (const name of key.split(".")) {
    if (!m) return undefined;
    const f: DescField | undefined = m.fields.find((x) => x.name === name || x.jsonName === name);
    if (!f) return undefined;
    chain.push(f);
    m = f.fieldKind === "message" && !isWellKnownLeaf(f.message) ? f.message : undefined;
  }
  return chain;
}

// Messages whose JSON form is a string, so a query value can set them (e.g. ?since=2026-01-01T00:00:00Z).
const STRING_JSON_MESSAGES = new Set([
  "google.protobuf.Timestamp",
  "google.protobuf.Duration",
  "google.protobuf.FieldMask",
  "google.protobuf.StringValue",
  "google.protobuf.BytesValue",
  "google.protobuf.Int64Value",
  "google.protobuf.UInt64Value",
  "google.protobuf.Int32Value",
  "google.protobuf.UInt32Value",
  "google.protobuf.BoolValue",
  "google.protobuf.FloatValue",
  "google.protobuf.DoubleValue",
]);

function isWellKnownLeaf(m: DescMessage): boolean {
  return STRING_JSON_MESSAGES.has(m.typeName);
}

function setLeaf(tree: Tree, chain: readonly DescField[], values: readonly string[], what: string, overwrite: boolean): void {
  let node = tree;
  for (const f of chain.slice(0, -1)) {
    // Either name may already be there (a body written with proto names); keep one.
    const existing = node[f.jsonName] ?? node[f.name];
    delete node[f.name];
    if (existing !== undefined && (typeof existing !== "object" || existing === null || Array.isArray(existing))) {
      throw invalid(`${what}: ${f.name} is not an object in the body`);
    }
    const next: Tree = existing ? { ...(existing as Tree) } : {};
    node[f.jsonName] = next;
    node = next;
  }
  const leaf = chain[chain.length - 1]!;
  if (leaf.fieldKind === "map") throw invalid(`${what}: map fields cannot be set from a URL`);
  if (leaf.fieldKind === "message" && !isWellKnownLeaf(leaf.message)) throw invalid(`${what}: ${leaf.name} is a message; name one of its fields`);
  const converted = values.map((v) => jsonOf(leaf, v, what));
  const existing = node[leaf.jsonName] ?? node[leaf.name];
  // A repeated field may be given under both its names (?user_ids=a&userIds=b): the values add up.
  const earlier = !overwrite && leaf.fieldKind === "list" && Array.isArray(existing) ? existing : [];
  if (!overwrite && existing !== undefined && leaf.fieldKind !== "list") throw invalid(`${what}: field set twice`);
  delete node[leaf.name];
  if (leaf.fieldKind === "list") node[leaf.jsonName] = [...earlier, ...converted];
  else {
    if (converted.length > 1) throw invalid(`${what}: repeated, but ${leaf.name} is not a repeated field`);
    node[leaf.jsonName] = converted[0]!;
  }
}

/** A URL string as the JSON value fromJson expects for the field. */
function jsonOf(field: DescField, value: string, what: string): JsonValue {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "enum") return /^-?\d+$/.test(value) ? Number(value) : value;
  if (kind === "scalar") {
    const scalar = (field as { scalar: number }).scalar;
    // ScalarType.BOOL = 8
    if (scalar === 8) {
      if (value === "true" || value === "1") return true;
      if (value === "false" || value === "0") return false;
      throw invalid(`${what}: "${value}" is not a boolean`);
    }
  }
  return value;
}
