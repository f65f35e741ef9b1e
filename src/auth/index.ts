/** Authentication and authorization of the unified API (MarkService, DirectoryService). */
export { createAuthenticator, PROTECTED_MODE_MESSAGE, type Authenticator } from "./authenticate.js";
export { actsForAnyOwner, callerKey, callerOf, IN_PROCESS_CALLER, ownerRefusal, requireAnyOwner, requireOwner, type Caller } from "./caller.js";
export { authConfigFromEnv, type AuthConfig, type AuthMode } from "./config.js";
export { authInterceptor, createAuthInterceptor, createCallAuthorizer, fixedCallerInterceptor, type AuthInterceptorOptions, type CallAuthorizer } from "./interceptor.js";
export { isLoopbackAddress, isLoopbackHost, peerContextValues, peerKey, peerOf, type Peer } from "./peer.js";
export { createTokenVerifier, type TokenVerifier } from "./verify.js";
