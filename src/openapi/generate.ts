/**
 * OpenAPI 3.1 for the REST routes the transcoder serves: the same routesOf() compiles the
 * google.api.http annotations, so the document cannot describe a route the server does not have.
 * Schemas follow the proto3 JSON mapping (JSON names, 64-bit integers as strings, enums as names).
 */
import { ScalarType, type DescEnum, type DescField, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { routesOf, type Route } from "../transcode/routes.js";

type Json = { [k: string]: unknown };

export interface OpenapiOptions {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
  /** Leading comments of a descriptor (protoplugin's getComments), for descriptions. */
  readonly comments?: (d: DescMessage | DescField | DescEnum | Route["method"]) => string | undefined;
}

const INT64 = new Set([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64, ScalarType.UINT64, ScalarType.FIXED64]);
const UNSIGNED = new Set([ScalarType.UINT32, ScalarType.FIXED32, ScalarType.UINT64, ScalarType.FIXED64]);

const WKT: Record<string, Json> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" },
  "google.protobuf.FieldMask": { type: "string" },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.Struct": { type: "object", additionalProperties: true },
  "google.protobuf.Value": {},
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } }, required: ["@type"], additionalProperties: true },
};

const STANDARD_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

const ERROR_CODES: [number, string][] = [
  [400, "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE"],
  [401, "UNAUTHENTICATED: missing, malformed, expired or wrongly signed bearer token"],
  [403, "PERMISSION_DENIED: the token may not act for this owner, or protected mode refused the client"],
  [404, "NOT_FOUND"],
  [429, "RESOURCE_EXHAUSTED"],
];

/** The OpenAPI document for every annotated service in `files`. */
export function openapiFor(files: readonly DescFile[], opts: OpenapiOptions): Json {
  const services = files.flatMap((f) => f.services);
  const routes = routesOf(services);
  const schemas = new Map<string, Json>();
  const describe = (d: Parameters<NonNullable<OpenapiOptions["comments"]>>[0]) => opts.comments?.(d)?.trim() || undefined;

  const ref = (typeName: string) => ({ $ref: `#/components/schemas/${typeName}` });

  const enumSchema = (e: DescEnum): Json => {
    if (!schemas.has(e.typeName)) {
      const d = describe(e);
      schemas.set(e.typeName, { type: "string", enum: e.values.map((v) => v.name), ...(d ? { description: `${d} (in a URL also the number)` } : {}) });
    }
    return ref(e.typeName);
  };
  const scalarSchema = (t: ScalarType): Json => {
    if (t === ScalarType.BOOL) return { type: "boolean" };
    if (t === ScalarType.STRING) return { type: "string" };
    if (t === ScalarType.BYTES) return { type: "string", contentEncoding: "base64" };
    if (t === ScalarType.DOUBLE || t === ScalarType.FLOAT) return { type: "number", format: t === ScalarType.DOUBLE ? "double" : "float" };
    if (INT64.has(t)) return { type: "string", format: UNSIGNED.has(t) ? "uint64" : "int64", pattern: UNSIGNED.has(t) ? "^[0-9]+$" : "^-?[0-9]+$" };
    return { type: "integer", format: UNSIGNED.has(t) ? "uint32" : "int32", ...(UNSIGNED.has(t) ? { minimum: 0 } : {}) };
  };
  const messageSchema = (m: DescMessage): Json => {
    const wkt = WKT[m.typeName];
    if (wkt) return wkt;
    if (m.typeName.startsWith("google.protobuf.") && m.typeName.endsWith("Value")) {
      const inner = m.fields[0]!;
      return inner.fieldKind === "scalar" ? scalarSchema(inner.scalar) : {};
    }
    if (!schemas.has(m.typeName)) {
      const props: Json = {};
      schemas.set(m.typeName, {});
      for (const f of m.fields) {
        const s = fieldSchema(f);
        const d = describe(f);
        props[f.jsonName] = d ? { ...s, description: d } : s;
      }
      const d = describe(m);
      schemas.set(m.typeName, { type: "object", ...(d ? { description: d } : {}), properties: props, additionalProperties: false });
    }
    return ref(m.typeName);
  };
  const singular = (f: { fieldKind: string; scalar?: ScalarType; enum?: DescEnum; message?: DescMessage }): Json => {
    if (f.enum) return enumSchema(f.enum);
    if (f.message) return messageSchema(f.message);
    return scalarSchema(f.scalar!);
  };
  function fieldSchema(f: DescField): Json {
    switch (f.fieldKind) {
      case "scalar":
        return scalarSchema(f.scalar);
      case "enum":
        return enumSchema(f.enum);
      case "message":
        return messageSchema(f.message);
      case "list":
        return { type: "array", items: f.listKind === "scalar" ? scalarSchema(f.scalar) : singular(f.listKind === "enum" ? { fieldKind: "enum", enum: f.enum } : { fieldKind: "message", message: f.message }) };
      case "map":
        return { type: "object", additionalProperties: f.mapKind === "scalar" ? scalarSchema(f.scalar) : singular(f.mapKind === "enum" ? { fieldKind: "enum", enum: f.enum } : { fieldKind: "message", message: f.message }) };
    }
  }
  const statusSchema = {
    type: "object",
    description: "google.rpc.Status: code is the gRPC code number",
    properties: {
      code: { type: "integer", format: "int32" },
      message: { type: "string" },
      details: { type: "array", items: WKT["google.protobuf.Any"] },
    },
  };

  /** Query parameters: every leaf field not bound by the path (proto names, dotted for nested messages). */
  const queryParams = (route: Route): Json[] => {
    const out: Json[] = [];
    const bound = new Set(route.pathFields.keys());
    const walk = (m: DescMessage, prefix: string, depth: number) => {
      for (const f of m.fields) {
        const name = prefix + f.name;
        if (bound.has(name) || f.fieldKind === "map") continue;
        if (f.fieldKind === "message" && !WKT[f.message.typeName]) {
          if (depth < 3) walk(f.message, `${name}.`, depth + 1);
          continue;
        }
        if (f.fieldKind === "list" && f.listKind === "message") continue;
        const d = describe(f);
        out.push({
          name,
          in: "query",
          required: false,
          ...(d ? { description: d } : {}),
          schema: fieldSchema(f),
          ...(f.fieldKind === "list" ? { style: "form", explode: true } : {}),
        });
      }
    };
    walk(route.method.input, "", 0);
    return out;
  };

  const paths: Record<string, Json> = {};
  const opIds = new Map<string, number>();
  for (const route of routes) {
    const t = route.template;
    let path = "";
    for (let i = 0; i < t.segments.length; i++) {
      const v = t.variables.find((x) => x.start === i);
      if (v) {
        path += `/{${v.fieldPath}}`;
        i = v.end - 1;
        continue;
      }
      const s = t.segments[i]!;
      path += `/${s.kind === "literal" ? s.value : s.kind}`;
    }
    if (t.verb) path += `:${t.verb}`;
    const method = route.httpMethod.toLowerCase();
    const base = `${route.service.name}_${route.method.name}`;
    const n = (opIds.get(base) ?? 0) + 1;
    opIds.set(base, n);
    const parameters: Json[] = [...route.pathFields.entries()].map(([name, chain]) => {
      const leaf = chain[chain.length - 1]!;
      const d = describe(leaf);
      return { name, in: "path", required: true, ...(d ? { description: d } : {}), schema: fieldSchema(leaf) };
    });
    if (route.body !== "*") parameters.push(...queryParams(route).filter((p) => !(route.body && route.body !== "*" && String(p.name).split(".")[0] === route.body.name)));
    const output = route.responseBody ? fieldSchema(route.responseBody) : messageSchema(route.method.output);
    const streaming = route.method.methodKind === "server_streaming";
    const d = describe(route.method);
    const op: Json = {
      operationId: n === 1 ? base : `${base}_${n}`,
      tags: [route.service.name],
      ...(d ? { description: d } : {}),
      summary: `${route.service.typeName}.${route.method.name}`,
      parameters,
      responses: {
        "200": streaming
          ? {
              description: "Newline-delimited JSON: one {\"result\": ...} object per message; an error ends the stream as {\"error\": Status}",
              content: { "application/x-ndjson": { schema: { type: "object", properties: { result: output, error: ref("google.rpc.Status") } } } },
            }
          : { description: "OK", content: { "application/json": { schema: output } } },
        ...Object.fromEntries(ERROR_CODES.map(([code, desc]) => [String(code), { $ref: `#/components/responses/Error${code}`, description: desc }])),
        default: { $ref: "#/components/responses/Error" },
      },
    };
    if (route.body) {
      op.requestBody = {
        required: route.body === "*",
        content: { "application/json": { schema: route.body === "*" ? messageSchema(route.method.input) : fieldSchema(route.body) } },
      };
    }
    // OpenAPI names only the standard methods; a custom one (google.api.CustomHttpPattern) goes
    // under an extension of the path item.
    const item = (paths[path] ??= {});
    if (STANDARD_METHODS.has(method)) item[method] = op;
    else ((item["x-custom-methods"] ??= {}) as Json)[route.httpMethod] = op;
  }
  schemas.set("google.rpc.Status", statusSchema);
  const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: ref("google.rpc.Status") } } });
  return {
    openapi: "3.1.0",
    info: { title: opts.title, version: opts.version, ...(opts.description ? { description: opts.description } : {}) },
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "CONVMARK_AUTH_JWT_SECRET (HS256) or CONVMARK_AUTH_JWKS_FILE (RS256/ES256)" },
      },
      responses: {
        Error: errorResponse("Any other error (google.rpc.Status)"),
        ...Object.fromEntries(ERROR_CODES.map(([code, desc]) => [`Error${code}`, errorResponse(desc)])),
      },
      schemas: Object.fromEntries([...schemas.entries()].sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}
