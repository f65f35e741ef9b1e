import { createRegistry } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/**
 * Message types that can appear inside google.protobuf.Any in our responses (UpdateResult status
 * details). The server and JSON clients need them to print and parse those Any values.
 */
export const anyTypeRegistry = createRegistry(ErrorInfoSchema);
