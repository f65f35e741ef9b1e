/**
 * Binary protobuf encoding of response messages, the one place routes that frame their own
 * responses (watch-route.ts, the lean unary routes) call. Today every message goes through
 * protobuf-es's reflective toBinary; schemas with a faster, byte-identical encoder are looked up
 * here first.
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  return toBinary(schema, message);
}
