/**
 * What the CLI's commands need beyond argument parsing (protobuf runtime, generated code, Connect
 * transports, the progress bar), loaded only when a command runs: `--help` and usage errors stay fast.
 */
export { toJson, toJsonString } from "@bufbuild/protobuf";
export { timestampDate } from "@bufbuild/protobuf/wkt";
export { Code, ConnectError } from "@connectrpc/connect";
export { GetUsersResponseSchema, GroupSchema, IdResultSchema } from "../../gen/convmark/v1/directory_service_pb.js";
export {
  ConversationSchema,
  ConversationType,
  ConversationUpdateSchema,
  DeleteConversationsResponseSchema,
  ListConversationsResponseSchema,
  ResultView,
  SyncConversationsResponseSchema,
  UpdateConversationsResponseSchema,
  WatchConversationsResponseSchema,
} from "../../gen/convmark/v1/mark_service_pb.js";
export { HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
export { anyTypeRegistry } from "../service/json-registry.js";
export { createClients } from "./client.js";
export { CONVERSATION_HEADER, conversationDetails, conversationRow, marksText, table, typeName } from "./format.js";
export { rpcErrorText, statusText } from "./output.js";
export { exportConversations, importConversations } from "./transfer.js";
