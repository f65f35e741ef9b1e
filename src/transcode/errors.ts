/** google.rpc.Status JSON for a ConnectError, the REST error body grpc-gateway sends. */
import { create, createRegistry, fromBinary, toJson, type JsonObject, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import type { ConnectError } from "@connectrpc/connect";

/** { code, message, details: [{ "@type": ..., ... }] }; details the registry cannot print are left out. */
export function statusJson(err: ConnectError, registry?: Registry): JsonObject {
  const details: JsonValue[] = [];
  for (const d of err.details) {
    try {
      if ("desc" in d) {
        const any = create(AnySchema, { typeUrl: `type.googleapis.com/${d.desc.typeName}`, value: new Uint8Array() });
        const reg = createRegistry(d.desc, ...(registry ? [registry] : []));
        const msg = create(d.desc, d.value as never);
        details.push({ "@type": any.typeUrl, ...(toJson(d.desc, msg, { registry: reg }) as JsonObject) });
      } else {
        const desc = registry?.getMessage(d.type);
        if (!desc) continue;
        details.push({ "@type": `type.googleapis.com/${d.type}`, ...(toJson(desc, fromBinary(desc, d.value), { registry: registry! }) as JsonObject) });
      }
    } catch {
      // A detail that cannot be printed is dropped rather than failing the error response.
    }
  }
  return { code: err.code, message: err.rawMessage, details };
}
