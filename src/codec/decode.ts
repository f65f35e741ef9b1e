/**
 * Binary protobuf decoding of request and response messages, the one place routes and clients that
 * read their own bytes (the lean unary routes, watch-route.ts, grpcCodec) call. Messages of
 * convmark.v1 and what they reach go through the generated decoders (gen/convmark/v1/
 * binary_decoders.ts, from src/codec/protoc-gen-codec.ts), which return exactly what protobuf-es's
 * fromBinary returns and throw where it throws (an Error; routes answer INVALID_ARGUMENT); any
 * other schema goes through fromBinary.
 */
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { binaryDecoders } from "../../gen/convmark/v1/binary_decoders.js";

export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  const decode = binaryDecoders.get(schema);
  return decode ? (decode(bytes) as MessageShape<Desc>) : fromBinary(schema, bytes);
}
