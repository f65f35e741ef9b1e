// Server reflection: the index answers, and both wire versions over a real bidi stream.
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { file_google_api_annotations } from "../../gen/google/api/annotations_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import {
  ServerReflection as ReflectionV1,
  ServerReflectionRequestSchema as RequestV1Schema,
  type ServerReflectionRequest as RequestV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ReflectionV1alpha,
  ServerReflectionRequestSchema as RequestV1alphaSchema,
  type ServerReflectionRequest as RequestV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createReflectionIndex, type ReflectionAnswer } from "../../src/server/reflection.js";
import { startApp, type Started } from "./helpers.js";

type Req = Parameters<ReturnType<typeof createReflectionIndex>["answer"]>[0];
const ask = (messageRequest: Req["messageRequest"]): Req => ({ messageRequest });

function files(answer: ReflectionAnswer): string[] {
  if (answer.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${JSON.stringify(answer)}`);
  return answer.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

/** What a client does with the bytes: build a registry; it throws if any file or import is missing or broken. */
function registryFrom(answer: ReflectionAnswer) {
  if (answer.case !== "fileDescriptorResponse") throw new Error("expected files");
  const [first, ...rest] = answer.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  const byName = new Map(rest.map((f) => [f.name, f]));
  return createFileRegistry(first!, (name) => byName.get(name));
}

describe("reflection index", () => {
  const index = createReflectionIndex([MarkService, Health], [file_google_api_annotations]);

  it("lists the services it was given", () => {
    expect(index.answer(ask({ case: "listServices", value: "*" }), new Set())).toEqual({
      case: "listServicesResponse",
      value: { service: [{ name: "convmark.v1.MarkService" }, { name: "grpc.health.v1.Health" }] },
    });
  });

  it("returns the file containing a symbol plus its transitive imports, usable to rebuild the schema", () => {
    const answer = index.answer(ask({ case: "fileContainingSymbol", value: "convmark.v1.MarkService" }), new Set());
    const names = files(answer);
    expect(names[0]).toBe("convmark/v1/mark_service.proto");
    expect(names).toEqual(
      expect.arrayContaining(["google/protobuf/timestamp.proto", "google/rpc/status.proto", "google/protobuf/any.proto"]),
    );
    const reg = registryFrom(answer);
    const conv = reg.getMessage("convmark.v1.Conversation");
    expect(conv?.field.updateTime?.message?.typeName).toBe("google.protobuf.Timestamp");
    expect(reg.getService("convmark.v1.MarkService")?.methods.map((m) => m.name)).toContain("GetConversation");
  });

  it("does not resend imports already sent on the same stream, but always sends the requested file", () => {
    const sent = new Set<string>();
    expect(files(index.answer(ask({ case: "fileContainingSymbol", value: "convmark.v1.Conversation" }), sent)).length).toBeGreaterThan(1);
    expect(files(index.answer(ask({ case: "fileByFilename", value: "convmark/v1/mark_service.proto" }), sent))).toEqual([
      "convmark/v1/mark_service.proto",
    ]);
    expect(files(index.answer(ask({ case: "fileByFilename", value: "google/protobuf/timestamp.proto" }), sent))).toEqual([
      "google/protobuf/timestamp.proto",
    ]);
  });

  it("resolves methods, fields, nested types, enum values and a leading dot", () => {
    for (const symbol of [
      "convmark.v1.MarkService.GetConversation",
      "convmark.v1.Conversation.update_time",
      ".convmark.v1.ConversationKey",
      "convmark.v1.CONVERSATION_TYPE_GROUP",
    ]) {
      expect(files(index.answer(ask({ case: "fileContainingSymbol", value: symbol }), new Set()))[0]).toBe(
        "convmark/v1/mark_service.proto",
      );
    }
    for (const symbol of ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc.health.v1.HealthCheckResponse.SERVING"]) {
      expect(files(index.answer(ask({ case: "fileContainingSymbol", value: symbol }), new Set()))[0]).toBe("grpc/health/v1/health.proto");
    }
  });

  it("answers unknown symbols, files, extensions and empty requests with an error_response", () => {
    const notFound = { case: "errorResponse", value: { errorCode: 5 } };
    expect(index.answer(ask({ case: "fileContainingSymbol", value: "no.Such" }), new Set())).toMatchObject(notFound);
    expect(index.answer(ask({ case: "fileByFilename", value: "no/such.proto" }), new Set())).toMatchObject(notFound);
    expect(
      index.answer(ask({ case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 1 } }), new Set()),
    ).toMatchObject(notFound);
    expect(index.answer(ask({ case: "allExtensionNumbersOfType", value: "no.Such" }), new Set())).toMatchObject(notFound);
    expect(index.answer(ask({ case: undefined }), new Set())).toMatchObject({ case: "errorResponse", value: { errorCode: 3 } });
  });

  it("knows extensions from the files it indexes (google.api.http) and serializes descriptor.proto", () => {
    const answer = index.answer(
      ask({ case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 } }),
      new Set(),
    );
    expect(files(answer)).toEqual(["google/api/annotations.proto", "google/api/http.proto", "google/protobuf/descriptor.proto"]);
    expect(registryFrom(answer).getExtension("google.api.http")?.number).toBe(72295728);
    expect(index.answer(ask({ case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" }), new Set())).toEqual({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "google.protobuf.MethodOptions", extensionNumber: [72295728] },
    });
    expect(index.answer(ask({ case: "allExtensionNumbersOfType", value: "convmark.v1.Conversation" }), new Set())).toEqual({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "convmark.v1.Conversation", extensionNumber: [] },
    });
  });
});

describe("reflection over gRPC", () => {
  let s: Started | undefined;
  afterEach(async () => {
    await s?.app.close(500);
    s = undefined;
  });

  async function* requestsV1(...reqs: RequestV1[]) {
    yield* reqs;
  }
  async function* requestsV1alpha(...reqs: RequestV1alpha[]) {
    yield* reqs;
  }

  it("v1: an unknown symbol is an error_response and the stream keeps answering", async () => {
    s = await startApp(() => {}, []);
    const client = createClient(ReflectionV1, createGrpcTransport({ baseUrl: s.baseUrl }));
    const out = [];
    for await (const res of client.serverReflectionInfo(
      requestsV1(
        create(RequestV1Schema, { host: "h", messageRequest: { case: "listServices", value: "" } }),
        create(RequestV1Schema, { messageRequest: { case: "fileContainingSymbol", value: "nope.Nope" } }),
        create(RequestV1Schema, { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" } }),
      ),
    )) {
      out.push(res);
    }
    expect(out).toHaveLength(3);
    expect(out[0]!.validHost).toBe("h");
    expect(out[0]!.originalRequest?.messageRequest.case).toBe("listServices");
    expect(out[0]!.messageResponse.case).toBe("listServicesResponse");
    expect(out[1]!.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    expect(out[2]!.messageResponse.case).toBe("fileDescriptorResponse");
  });

  it("v1alpha answers the same questions", async () => {
    s = await startApp(() => {}, []);
    const client = createClient(ReflectionV1alpha, createGrpcTransport({ baseUrl: s.baseUrl }));
    const out = [];
    for await (const res of client.serverReflectionInfo(
      requestsV1alpha(create(RequestV1alphaSchema, { messageRequest: { case: "listServices", value: "" } })),
    )) {
      out.push(res);
    }
    expect(out).toHaveLength(1);
    const r = out[0]!.messageResponse;
    expect(r.case === "listServicesResponse" && r.value.service.map((x) => x.name)).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });
});
