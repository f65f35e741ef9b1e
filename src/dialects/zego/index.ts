export { createZegoDialect, newRequestId, responseToJson, AUTH_METADATA, AUTH_QUERY, SET_CONV_MARK_ACTION, type ZegoDialect } from "./dialect.js";
export { zegoConfigFromEnv, type ZegoConfig } from "./config.js";
export { zegoSignature, type ZegoAuthParams, type ZegoError } from "./auth.js";
export { ZegoCode, ItemCode, ZegoConvType } from "./codes.js";
