import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { file_transcodetest_v1_library } from "../../gen/transcodetest/v1/library_pb.js";
import committed from "../../gen/openapi/openapi.json" with { type: "json" };
import { file_convmark_v1_directory_service } from "../../gen/convmark/v1/directory_service_pb.js";
import { file_convmark_v1_mark_service } from "../../gen/convmark/v1/mark_service_pb.js";
import { openapiFor } from "../../src/openapi/generate.js";

type Doc = { paths: Record<string, Record<string, any>>; components: { schemas: Record<string, any> } };

describe("openapiFor", () => {
  const doc = openapiFor([file_transcodetest_v1_library], { title: "t", version: "1" }) as unknown as Doc;

  it("is a valid OpenAPI 3.1 document", async () => {
    const r = await new Validator().validate(doc as never);
    expect(r.errors ?? []).toEqual([]);
    expect(r.valid).toBe(true);
  });

  it("describes every binding with its path, query and body parameters", () => {
    expect(Object.keys(doc.paths).sort()).toEqual([
      "/v1/archive/{name}",
      "/v1/shelves/*/books:search",
      "/v1/shelves/{shelf}/books",
      "/v1/shelves/{shelf}/books/special",
      "/v1/shelves/{shelf}/books:watch",
      "/v1/{book.name}",
      "/v1/{name}",
      "/v1/{name}:archive",
    ]);
    expect(Object.keys(doc.paths["/v1/{name}"]!).sort()).toEqual(["delete", "get"]);
    expect(Object.keys(doc.paths["/v1/shelves/*/books:search"]!["x-custom-methods"])).toEqual(["SEARCH"]);
    const list = doc.paths["/v1/shelves/{shelf}/books"]!.get;
    const names = list.parameters.map((p: any) => `${p.in}:${p.name}`);
    expect(names).toEqual(expect.arrayContaining(["path:shelf", "query:filter.genres", "query:filter.min_pages", "query:page_size", "query:filter.published_after"]));
    const minPages = list.parameters.find((p: any) => p.name === "filter.min_pages");
    expect(minPages.schema).toMatchObject({ type: "string", format: "uint64" });
    const genres = list.parameters.find((p: any) => p.name === "filter.genres");
    expect(genres).toMatchObject({ explode: true, schema: { type: "array", items: { $ref: "#/components/schemas/transcodetest.v1.Genre" } } });
    expect(doc.components.schemas["transcodetest.v1.Genre"]).toMatchObject({ type: "string", enum: ["GENRE_UNSPECIFIED", "GENRE_FICTION", "GENRE_POETRY"] });
    // body "book", response_body "book"
    const create = doc.paths["/v1/shelves/{shelf}/books"]!.post;
    expect(create.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/transcodetest.v1.Book" });
    expect(create.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/transcodetest.v1.Book" });
    expect(create.parameters.map((p: any) => p.name)).toEqual(["shelf", "validate_only"]);
    expect(doc.components.schemas["transcodetest.v1.Book"].properties.publishTime).toMatchObject({ type: "string", format: "date-time" });
    // streams are NDJSON; errors are google.rpc.Status
    expect(Object.keys(doc.paths["/v1/shelves/{shelf}/books:watch"]!.get.responses["200"].content)).toEqual(["application/x-ndjson"]);
    expect(create.responses["403"].$ref).toBe("#/components/responses/Error403");
  });

  it("the committed gen/openapi/openapi.json is what the generator makes of convmark.v1", () => {
    const fresh = openapiFor([file_convmark_v1_directory_service, file_convmark_v1_mark_service], { title: "convmark", version: "v1" }) as unknown as Doc;
    expect(Object.keys((committed as unknown as Doc).paths).sort()).toEqual(Object.keys(fresh.paths).sort());
    expect(Object.keys(fresh.paths)).toHaveLength(18);
  });
});
