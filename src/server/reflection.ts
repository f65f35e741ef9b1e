// gRPC server reflection (grpc.reflection.v1 and v1alpha) from protobuf-es v2 descriptors, so that
// `buf curl`, grpcurl and friends can list and call the services without local .proto files.
import { create, toBinary, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionResponseSchema as ResponseV1Schema,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionResponseSchema as ResponseV1alphaSchema,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

export { ServerReflectionV1, ServerReflectionV1alpha };

// grpc::StatusCode values used in ErrorResponse.error_code.
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;

/** The request fields v1 and v1alpha share (they differ only in type names). */
interface ReflectionRequest {
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

/** The response oneof, as an init shape both v1 and v1alpha accept. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

export interface ReflectionIndex {
  /** Answers one request. `sent` holds file names already sent on this stream (deduplicates dependencies). */
  answer(req: ReflectionRequest, sent: Set<string>): ReflectionAnswer;
  readonly serviceNames: readonly string[];
  readonly fileNames: readonly string[];
}

/**
 * Indexes the files declaring the given services and all their transitive imports.
 * extraFiles adds files that declare no served service (e.g. extensions clients should see).
 */
export function createReflectionIndex(services: readonly DescService[], extraFiles: readonly DescFile[] = []): ReflectionIndex {
  const files = new Map<string, DescFile>(); // by file name, e.g. "convmark/v1/mark_service.proto"
  const symbols = new Map<string, DescFile>(); // fully-qualified name -> declaring file
  const extensions = new Map<string, Map<number, DescFile>>(); // extendee -> number -> declaring file
  const serviceNames = [...new Set(services.map((s) => s.typeName))].sort();

  const addExtensions = (file: DescFile, exts: DescFile["extensions"]): void => {
    for (const ext of exts) {
      symbols.set(ext.typeName, file);
      let byNumber = extensions.get(ext.extendee.typeName);
      if (!byNumber) extensions.set(ext.extendee.typeName, (byNumber = new Map()));
      byNumber.set(ext.number, file);
    }
  };
  const addEnums = (file: DescFile, scope: string, enums: DescFile["enums"]): void => {
    for (const e of enums) {
      symbols.set(e.typeName, file);
      // Enum values are scoped as siblings of their enum, as in protoc.
      for (const v of e.values) symbols.set(`${scope}${v.name}`, file);
    }
  };
  const addMessage = (file: DescFile, m: DescMessage): void => {
    symbols.set(m.typeName, file);
    for (const f of m.fields) symbols.set(`${m.typeName}.${f.name}`, file);
    for (const o of m.oneofs) symbols.set(`${m.typeName}.${o.name}`, file);
    addEnums(file, `${m.typeName}.`, m.nestedEnums);
    addExtensions(file, m.nestedExtensions);
    for (const n of m.nestedMessages) addMessage(file, n);
  };
  const addFile = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    const scope = file.proto.package ? `${file.proto.package}.` : "";
    for (const m of file.messages) addMessage(file, m);
    addEnums(file, scope, file.enums);
    addExtensions(file, file.extensions);
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const method of s.methods) symbols.set(`${s.typeName}.${method.name}`, file);
    }
    for (const dep of file.dependencies) addFile(dep);
  };
  for (const s of services) addFile(s.file);
  for (const f of extraFiles) addFile(f);

  const encoded = new Map<string, Uint8Array>();
  const encode = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file.proto.name);
    if (!bytes) encoded.set(file.proto.name, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  };

  /** The file itself (always) plus every transitive import not yet sent on this stream, breadth-first like grpc-go. */
  const withDependencies = (file: DescFile, sent: Set<string>): ReflectionAnswer => {
    const out: Uint8Array[] = [];
    const queue = [file];
    const visited = new Set<string>();
    for (let f = queue.shift(); f; f = queue.shift()) {
      if (visited.has(f.proto.name)) continue;
      visited.add(f.proto.name);
      if (out.length === 0 || !sent.has(f.proto.name)) {
        sent.add(f.proto.name);
        out.push(encode(f));
      }
      queue.push(...f.dependencies);
    }
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  };

  const notFound = (what: string): ReflectionAnswer => ({
    case: "errorResponse",
    value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` },
  });

  return {
    serviceNames,
    fileNames: [...files.keys()].sort(),
    answer(req, sent) {
      const r = req.messageRequest;
      switch (r.case) {
        case "listServices":
          return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
        case "fileByFilename": {
          const file = files.get(r.value);
          return file ? withDependencies(file, sent) : notFound(`file ${JSON.stringify(r.value)}`);
        }
        case "fileContainingSymbol": {
          // Tolerate a leading dot, as some clients send ".pkg.Type".
          const file = symbols.get(r.value.replace(/^\./, ""));
          return file ? withDependencies(file, sent) : notFound(`symbol ${JSON.stringify(r.value)}`);
        }
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = r.value;
          const file = extensions.get(containingType.replace(/^\./, ""))?.get(extensionNumber);
          return file ? withDependencies(file, sent) : notFound(`extension ${extensionNumber} of ${JSON.stringify(containingType)}`);
        }
        case "allExtensionNumbersOfType": {
          const typeName = r.value.replace(/^\./, "");
          if (!symbols.has(typeName)) return notFound(`type ${JSON.stringify(r.value)}`);
          const numbers = [...(extensions.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
          return { case: "allExtensionNumbersResponse", value: { baseTypeName: typeName, extensionNumber: numbers } };
        }
        default:
          return { case: "errorResponse", value: { errorCode: INVALID_ARGUMENT, errorMessage: "empty message_request" } };
      }
    },
  };
}

export function createReflectionV1(index: ReflectionIndex): ServiceImpl<typeof ServerReflectionV1> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(ResponseV1Schema, { validHost: req.host, originalRequest: req, messageResponse: index.answer(req, sent) });
      }
    },
  };
}

export function createReflectionV1alpha(index: ReflectionIndex): ServiceImpl<typeof ServerReflectionV1alpha> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(ResponseV1alphaSchema, { validHost: req.host, originalRequest: req, messageResponse: index.answer(req, sent) });
      }
    },
  };
}

/**
 * Registers both reflection versions describing `services`. Pass every service the router serves
 * (the reflection services themselves included if they should be listed, as grpc-go does).
 */
export function registerReflection(router: ConnectRouter, services: readonly DescService[], extraFiles: readonly DescFile[] = []): ReflectionIndex {
  const index = createReflectionIndex(services, extraFiles);
  router.service(ServerReflectionV1, createReflectionV1(index));
  router.service(ServerReflectionV1alpha, createReflectionV1alpha(index));
  return index;
}
