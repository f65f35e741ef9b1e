/**
 * google.api.http path templates (grammar from google/api/http.proto):
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     Verb     = ":" LITERAL ;
 *
 * A template compiles once into a flat list of segment matchers plus variable spans; matching a
 * request path is then a walk over its segments (with backtracking only for "**").
 */

export type Segment = { readonly kind: "literal"; readonly value: string } | { readonly kind: "*" } | { readonly kind: "**" };

export interface Variable {
  /** Dotted field path as written in the template (proto names), e.g. "key.owner_user_id". */
  readonly fieldPath: string;
  /** Index of the first segment the variable spans, and one past the last. */
  readonly start: number;
  readonly end: number;
}

export interface PathTemplate {
  readonly source: string;
  readonly segments: readonly Segment[];
  readonly variables: readonly Variable[];
  readonly verb?: string;
}

export class TemplateSyntaxError extends Error {
  override readonly name = "TemplateSyntaxError";
}

const LITERAL = /^[A-Za-z0-9\-._~!$&'()+,;=@%]+$/;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Parses a template; throws TemplateSyntaxError naming the problem. */
export function parseTemplate(source: string): PathTemplate {
  const fail = (why: string): never => {
    throw new TemplateSyntaxError(`path template "${source}": ${why}`);
  };
  if (!source.startsWith("/")) fail('must start with "/"');
  let body = source.slice(1);
  let verb: string | undefined;
  // The verb is the text after the last ":" that is outside braces.
  let depth = 0;
  let verbAt = -1;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === ":" && depth === 0) verbAt = i;
  }
  if (verbAt >= 0) {
    verb = body.slice(verbAt + 1);
    body = body.slice(0, verbAt);
    if (!LITERAL.test(verb)) fail(`bad verb ":${verb}"`);
  }
  const segments: Segment[] = [];
  const variables: Variable[] = [];
  // Split on "/" outside braces.
  const parts: string[] = [];
  depth = 0;
  let cur = "";
  for (const c of body) {
    if (c === "{") depth++;
    if (c === "}") depth--;
    if (depth < 0 || depth > 1) fail("unbalanced or nested braces");
    if (c === "/" && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += c;
  }
  if (depth !== 0) fail("unbalanced braces");
  parts.push(cur);
  const pushPlain = (p: string, inVariable: boolean): void => {
    if (p === "*") segments.push({ kind: "*" });
    else if (p === "**") segments.push({ kind: "**" });
    else if (p.length === 0) fail("empty segment");
    else if (p.includes("{") || p.includes("}")) fail(`bad segment "${p}"`);
    else if (!LITERAL.test(p)) fail(`bad literal "${p}"`);
    else segments.push({ kind: "literal", value: p });
    void inVariable;
  };
  for (const p of parts) {
    if (!p.startsWith("{")) {
      pushPlain(p, false);
      continue;
    }
    if (!p.endsWith("}")) fail(`bad segment "${p}"`);
    const inner = p.slice(1, -1);
    const eq = inner.indexOf("=");
    const fieldPath = eq < 0 ? inner : inner.slice(0, eq);
    if (!FIELD_PATH.test(fieldPath)) fail(`bad field path "${fieldPath}"`);
    if (variables.some((v) => v.fieldPath === fieldPath)) fail(`field "${fieldPath}" bound twice`);
    const start = segments.length;
    if (eq < 0) segments.push({ kind: "*" });
    else {
      const sub = inner.slice(eq + 1);
      if (sub.length === 0) fail(`empty pattern for "${fieldPath}"`);
      for (const s of sub.split("/")) pushPlain(s, true);
    }
    variables.push({ fieldPath, start, end: segments.length });
  }
  const deep = segments.filter((s) => s.kind === "**").length;
  if (deep > 1) fail('at most one "**"');
  if (deep === 1 && segments[segments.length - 1]!.kind !== "**") fail('"**" must be the last segment');
  return { source, segments, variables, ...(verb !== undefined ? { verb } : {}) };
}

/** A request path split for matching: raw (still percent-encoded) segments and the verb, if any. */
export interface SplitPath {
  readonly segments: readonly string[];
  /** Text after the last ":" of the last segment, or undefined. */
  readonly verb?: string;
}

export function splitPath(pathname: string): SplitPath | undefined {
  if (!pathname.startsWith("/")) return undefined;
  const segments = pathname.slice(1).split("/");
  const last = segments[segments.length - 1]!;
  const colon = last.lastIndexOf(":");
  if (colon > 0) {
    segments[segments.length - 1] = last.slice(0, colon);
    return { segments, verb: last.slice(colon + 1) };
  }
  return { segments };
}

/** Variable bindings of a match: field path → value (segments decoded, multi-segment values joined by "/"). */
export type Bindings = Map<string, string>;

/**
 * Matches `path` against the template; returns bindings or undefined. A path with a verb matches a
 * template without one only if its last segment, colon included, matches (":" is legal in segments).
 */
export function matchTemplate(t: PathTemplate, path: SplitPath): Bindings | undefined {
  let segs = path.segments;
  if (t.verb !== undefined) {
    if (path.verb !== t.verb) return undefined;
  } else if (path.verb !== undefined) {
    segs = [...segs.slice(0, -1), `${segs[segs.length - 1]}:${path.verb}`];
  }
  const ts = t.segments;
  const hasDeep = ts.length > 0 && ts[ts.length - 1]!.kind === "**";
  if (hasDeep ? segs.length < ts.length - 1 : segs.length !== ts.length) return undefined;
  for (let i = 0; i < ts.length; i++) {
    const s = ts[i]!;
    if (s.kind === "**") break;
    const v = segs[i]!;
    if (v.length === 0) return undefined;
    if (s.kind === "literal" && s.value !== v) return undefined;
  }
  const bindings: Bindings = new Map();
  for (const v of t.variables) {
    const end = hasDeep && v.end === ts.length ? segs.length : v.end;
    const raw = segs.slice(v.start, end);
    let value: string;
    try {
      // Single-segment variables decode everything; multi-segment ones keep an encoded "/" as "%2F".
      value = v.end - v.start === 1 && ts[v.start]!.kind === "*"
        ? decodeURIComponent(raw[0]!)
        : raw.map((r) => decodeURIComponent(r.replace(/%2F/gi, "%252F"))).join("/");
    } catch {
      return undefined;
    }
    bindings.set(v.fieldPath, value);
  }
  return bindings;
}

/**
 * Specificity for choosing among templates that match the same path: per segment, a literal beats
 * "*" beats "**"; then a template with a verb beats one without.
 */
export function specificity(t: PathTemplate): number[] {
  return [...t.segments.map((s) => (s.kind === "literal" ? 3 : s.kind === "*" ? 2 : 1)), t.verb !== undefined ? 1 : 0];
}

/** True when two templates match exactly the same paths (so the same method on both is a conflict). */
export function sameShape(a: PathTemplate, b: PathTemplate): boolean {
  if (a.verb !== b.verb || a.segments.length !== b.segments.length) return false;
  return a.segments.every((s, i) => {
    const o = b.segments[i]!;
    return s.kind === o.kind && (s.kind !== "literal" || s.value === (o as { value: string }).value);
  });
}
