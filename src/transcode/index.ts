/**
 * REST transcoding for Connect services from google.api.http annotations. Self-contained: it needs
 * @bufbuild/protobuf, @connectrpc/connect and the generated google/api annotations, nothing of convmark.
 */
export { statusJson } from "./errors.js";
export { httpStatusFromCode } from "./http-status.js";
export { buildRequest } from "./request.js";
export { fieldChain, RouteConfigError, routesOf, type Route } from "./routes.js";
export { matchTemplate, parseTemplate, splitPath, TemplateSyntaxError, type PathTemplate } from "./template.js";
export { createTranscoder, writeStatus, type ErrorWriter, type Transcoder, type TranscoderOptions, type TranscodeRequest, type TranscodeResponse } from "./transcoder.js";
