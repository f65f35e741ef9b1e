/** A real @grpc/grpc-js client for any protobuf-es service: protobuf-es does the (de)serializing. */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

export interface GrpcTestClient {
  unary<I extends DescMessage, O extends DescMessage>(
    service: DescService,
    method: string,
    input: I,
    output: O,
    req: MessageInitShape<I>,
    metadata?: Record<string, string>,
  ): Promise<MessageShape<O>>;
  close(): void;
}

/** Connects over plaintext HTTP/2 (h2c), as gRPC services inside a cluster usually are called. */
export function grpcClient(url: string): GrpcTestClient {
  const target = new URL(url).host;
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  return {
    unary(service, method, input, output, req, metadata = {}) {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          `/${service.typeName}/${method}`,
          (m: MessageShape<typeof input>) => Buffer.from(toBinary(input, m)),
          (b: Buffer) => fromBinary(output, b),
          create(input, req),
          md,
          (err, res) => (err || !res ? reject(err ?? new Error("no response")) : resolve(res)),
        );
      });
    },
    close: () => client.close(),
  };
}
