export { createTencentDialect, MARK_CONTACT_PATH, parseMarkContactRequest, printResponse } from "./dialect.js";
export type { RequestLoader, TencentAuthParams, TencentCaller, TencentDialect } from "./dialect.js";
export { tencentConfigFromEnv, type TencentConfig } from "./config.js";
export { TencentCode, TencentError } from "./errors.js";
export { decodeUserSig, genUserSig, verifyUserSig, type UserSigClaims, type UserSigVerdict } from "./usersig.js";
