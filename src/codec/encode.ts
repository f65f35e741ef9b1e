/**
 * Binary protobuf encoding of response messages, the one place routes that frame their own
 * responses (watch-route.ts, the lean unary routes) call. Messages of convmark.v1 and what they
 * reach go through the generated two-pass encoders (gen/convmark/v1/binary_encoders.ts, from
 * src/codec/protoc-gen-codec.ts), which write exactly protobuf-es toBinary's bytes; any other
 * schema, and any message the fast path declines (unknown fields, values toBinary would reject),
 * goes through toBinary.
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { binaryEncoders } from "../../gen/convmark/v1/binary_encoders.js";

export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  return binaryEncoders.get(schema)?.(message) ?? toBinary(schema, message);
}
