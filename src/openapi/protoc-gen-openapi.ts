/**
 * A protoc/buf plugin writing openapi.json for the annotated services of the requested files.
 * Option `package=<name>` (repeatable) limits it to those proto packages.
 */
import { create, createFileRegistry } from "@bufbuild/protobuf";
import { CodeGeneratorResponseSchema, CodeGeneratorResponse_Feature, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { getComments, runNodeJs, type Plugin } from "@bufbuild/protoplugin";
import { openapiFor } from "./generate.js";

const plugin: Plugin = {
  name: "protoc-gen-convmark-openapi",
  version: "v1",
  run(request) {
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    const packages = request.parameter
      .split(",")
      .map((p) => p.trim())
      .filter((p) => p.startsWith("package="))
      .map((p) => p.slice("package=".length));
    const files = request.fileToGenerate
      .map((name) => registry.getFile(name)!)
      .filter((f) => packages.length === 0 || packages.includes(f.proto.package));
    const doc = openapiFor(files, {
      title: "convmark",
      version: "v1",
      description: "Per-user conversation marks: the REST form of convmark.v1 (transcoded from google.api.http).",
      comments: (d) => getComments(d).leading,
    });
    return create(CodeGeneratorResponseSchema, {
      supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL),
      file: [{ name: "openapi.json", content: `${JSON.stringify(doc, null, 2)}\n` }],
    });
  },
};

runNodeJs(plugin);
