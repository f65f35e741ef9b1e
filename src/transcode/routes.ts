/**
 * Routes compiled from google.api.http annotations: one per binding (additional_bindings included),
 * checked for conflicts once, at start.
 */
import type { DescExtension, DescField, DescFile, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import type { GenExtension } from "@bufbuild/protobuf/codegenv2";
import type { MethodOptions } from "@bufbuild/protobuf/wkt";
// Types only: the extension itself is taken from the services' own file dependencies, so this
// module also works on descriptors that did not come from generated code (a protoc plugin).
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { parseTemplate, sameShape, type PathTemplate } from "./template.js";

export interface Route {
  /** Upper-case HTTP method (a custom pattern's kind as written). */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  readonly service: DescService;
  readonly method: DescMethod;
  /** Fields bound from the path: field path → the field chain from the request message down. */
  readonly pathFields: ReadonlyMap<string, readonly DescField[]>;
  /** undefined: no body; "*": the whole request; otherwise the top-level field the body fills. */
  readonly body?: "*" | DescField;
  /** The response field sent as the body, or undefined for the whole response. */
  readonly responseBody?: DescField;
}

export class RouteConfigError extends Error {
  override readonly name = "RouteConfigError";
}

/** Every route of the services' annotated methods; throws RouteConfigError for a bad or conflicting annotation. */
export function routesOf(services: readonly DescService[]): Route[] {
  const routes: Route[] = [];
  for (const service of services) {
    const httpOption = httpExtension(service.file);
    if (!httpOption) continue;
    for (const method of service.methods) {
      if (!hasOption(method, httpOption)) continue;
      const rule = getOption(method, httpOption);
      const rules = [rule, ...rule.additionalBindings];
      for (const [i, r] of rules.entries()) {
        if (i > 0 && r.additionalBindings.length > 0) fail(method, "additional_bindings must not nest");
        routes.push(compileRule(service, method, r));
      }
    }
  }
  for (let i = 0; i < routes.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = routes[i]!;
      const b = routes[j]!;
      if (a.httpMethod === b.httpMethod && sameShape(a.template, b.template)) {
        throw new RouteConfigError(
          `conflicting google.api.http routes: ${a.httpMethod} ${a.template.source} (${a.method.parent.typeName}.${a.method.name}) ` +
            `and ${b.httpMethod} ${b.template.source} (${b.method.parent.typeName}.${b.method.name})`,
        );
      }
    }
  }
  return routes;
}

/** google.api.http as the file's imports define it (absent when the file does not import google/api/annotations.proto). */
function httpExtension(file: DescFile): GenExtension<MethodOptions, HttpRule> | undefined {
  const seen = new Set<DescFile>();
  const walk = (f: DescFile): DescExtension | undefined => {
    if (seen.has(f)) return undefined;
    seen.add(f);
    const ext = f.extensions.find((e) => e.typeName === "google.api.http");
    if (ext) return ext;
    for (const d of f.dependencies) {
      const found = walk(d);
      if (found) return found;
    }
    return undefined;
  };
  return walk(file) as GenExtension<MethodOptions, HttpRule> | undefined;
}

function fail(method: DescMethod, why: string): never {
  throw new RouteConfigError(`${method.parent.typeName}.${method.name}: google.api.http: ${why}`);
}

function patternOf(method: DescMethod, rule: HttpRule): { httpMethod: string; path: string } {
  const p = rule.pattern;
  switch (p.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      return { httpMethod: p.case.toUpperCase(), path: p.value };
    case "custom":
      if (!/^[A-Za-z]+$/.test(p.value.kind)) fail(method, `bad custom method "${p.value.kind}"`);
      return { httpMethod: p.value.kind.toUpperCase(), path: p.value.path };
    default:
      return fail(method, "no pattern (get, put, post, delete, patch or custom)");
  }
}

/** The field chain for a dotted proto-name path; every step but the last must be a singular message. */
export function fieldChain(message: DescMessage, path: string): DescField[] | undefined {
  const chain: DescField[] = [];
  let m: DescMessage | undefined = message;
  for (const name of path.split(".")) {
    if (!m) return undefined;
    const f: DescField | undefined = m.fields.find((x) => x.name === name);
    if (!f) return undefined;
    chain.push(f);
    m = f.fieldKind === "message" ? f.message : undefined;
  }
  return chain;
}

function compileRule(service: DescService, method: DescMethod, rule: HttpRule): Route {
  if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") {
    fail(method, "client and bidi streaming methods cannot be transcoded");
  }
  const { httpMethod, path } = patternOf(method, rule);
  let template: PathTemplate;
  try {
    template = parseTemplate(path);
  } catch (e) {
    return fail(method, (e as Error).message);
  }
  const pathFields = new Map<string, DescField[]>();
  for (const v of template.variables) {
    const chain = fieldChain(method.input, v.fieldPath);
    if (!chain) fail(method, `path variable "${v.fieldPath}" is not a field of ${method.input.typeName}`);
    const leaf = chain[chain.length - 1]!;
    if (leaf.fieldKind !== "scalar" && leaf.fieldKind !== "enum") fail(method, `path variable "${v.fieldPath}" must be a singular scalar or enum`);
    pathFields.set(v.fieldPath, chain);
  }
  let body: Route["body"];
  if (rule.body === "*") body = "*";
  else if (rule.body !== "") {
    const f = method.input.fields.find((x) => x.name === rule.body);
    if (!f) fail(method, `body "${rule.body}" is not a field of ${method.input.typeName}`);
    if ([...pathFields.keys()].some((p) => p === f.name || p.startsWith(`${f.name}.`))) fail(method, `body "${rule.body}" is also bound from the path`);
    body = f;
  }
  if (body !== undefined && httpMethod === "GET") {
    fail(method, `${httpMethod} must not have a body`);
  }
  let responseBody: DescField | undefined;
  if (rule.responseBody !== "") {
    responseBody = method.output.fields.find((x) => x.name === rule.responseBody);
    if (!responseBody) fail(method, `response_body "${rule.responseBody}" is not a field of ${method.output.typeName}`);
  }
  return {
    httpMethod,
    template,
    service,
    method,
    pathFields,
    ...(body !== undefined ? { body } : {}),
    ...(responseBody ? { responseBody } : {}),
  };
}
