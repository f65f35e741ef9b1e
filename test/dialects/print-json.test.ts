/**
 * The kernel's printJson (src/dialects/kernel.ts: one toJson, then one walk of the JSON) against
 * the definition it replaced (toJson again for every nested message), on seeded random messages of
 * every vendor message type, with and without lists to omit when empty.
 */
import { ScalarType, toJson, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { describe, expect, it } from "vitest";
import { file_vendor_openim_v1_auth_service } from "../../gen/vendor/openim/v1/auth_service_pb.js";
import { file_vendor_openim_v1_conversation_service } from "../../gen/vendor/openim/v1/conversation_service_pb.js";
import { file_vendor_tencent_v1_recent_contact } from "../../gen/vendor/tencent/v1/recent_contact_pb.js";
import { file_vendor_zego_v1_zim_server } from "../../gen/vendor/zego/v1/zim_server_pb.js";
import { printJson } from "../../src/dialects/kernel.js";
import { Gen } from "../support/random-message.js";

const INT64_TYPES = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

/** The previous printJson, verbatim. */
function reference(schema: DescMessage, message: MessageShape<DescMessage>, omitEmpty: ReadonlySet<string> = new Set()): JsonObject {
  const json = toJson(schema, message, { alwaysEmitImplicit: true }) as JsonObject;
  const msg = message as unknown as Record<string, unknown>;
  for (const f of schema.fields) {
    const v = json[f.jsonName];
    if (v === undefined || v === null) continue;
    if (f.fieldKind === "scalar" && INT64_TYPES.has(f.scalar) && typeof v === "string") json[f.jsonName] = Number(v);
    else if (f.fieldKind === "message" && typeof v === "object") json[f.jsonName] = reference(f.message, msg[f.localName] as MessageShape<DescMessage>, omitEmpty);
    else if (f.fieldKind === "list" && Array.isArray(v)) {
      if (v.length === 0 && omitEmpty.has(f.jsonName)) delete json[f.jsonName];
      else if (f.listKind === "message") json[f.jsonName] = (msg[f.localName] as MessageShape<DescMessage>[]).map((m) => reference(f.message, m, omitEmpty));
      else if (f.listKind === "scalar" && INT64_TYPES.has(f.scalar)) json[f.jsonName] = v.map((x) => (typeof x === "string" ? Number(x) : x));
    }
  }
  return json;
}

const FILES = [file_vendor_openim_v1_auth_service, file_vendor_openim_v1_conversation_service, file_vendor_tencent_v1_recent_contact, file_vendor_zego_v1_zim_server];
const MESSAGES = FILES.flatMap((f) => [...nestedTypes(f)].filter((t): t is DescMessage => t.kind === "message"));
// Messages with a oneof member the old definition could not print (it read oneof members as fields).
const PRINTABLE = MESSAGES.filter((m) => !m.fields.some((f) => f.oneof !== undefined));

describe("printJson", () => {
  it("covers the vendor messages", () => {
    expect(PRINTABLE.length).toBeGreaterThan(60);
  });

  it("prints every vendor message as the two-pass definition did, with and without omitted lists", () => {
    const gen = new Gen(2026);
    let compared = 0;
    for (let round = 0; round < 30; round++) {
      for (const schema of PRINTABLE) {
        const m = gen.message(schema) as MessageShape<DescMessage>;
        const omit = new Set(round % 2 === 0 ? [] : ["ContactGroupId", "ResultItem", "conversationIDs", "FailList", ...schema.fields.filter((f) => f.fieldKind === "list").map((f) => f.jsonName)]);
        expect(printJson(schema, m, omit)).toEqual(reference(schema, m, omit));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(1800);
  });
});
