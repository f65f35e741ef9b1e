/**
 * Serializer and deserializer for @grpc/grpc-js clients (and servers) of convmark's protos, through
 * the generated codecs: `client.makeUnaryRequest(path, serialize, deserialize, …)` or a service
 * definition's requestSerialize/responseDeserialize. Bytes and messages are protobuf-es's
 * (toBinary, fromBinary); a malformed message throws, which grpc-js reports as an INTERNAL error on
 * the client (a response it cannot parse).
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { decodeMessage } from "./decode.js";
import { encodeMessage } from "./encode.js";

export interface GrpcCodec<Desc extends DescMessage> {
  serialize(message: MessageShape<Desc>): Buffer;
  deserialize(bytes: Buffer): MessageShape<Desc>;
}

export function grpcCodec<Desc extends DescMessage>(schema: Desc): GrpcCodec<Desc> {
  return {
    serialize: (message) => {
      const bytes = encodeMessage(schema, message);
      return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    deserialize: (bytes) => decodeMessage(schema, bytes),
  };
}
