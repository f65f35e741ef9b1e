/**
 * A Transport that calls a service implementation directly, for callers in the same process (the
 * vendor dialects). The interceptors (logging, metrics) run as they do for network calls, but
 * nothing is serialized and no second protocol pass runs: createRouterTransport would encode and
 * decode every request and response once more.
 */
import { create, isMessage, type DescMessage, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  type ContextValues,
  type Interceptor,
  type ServiceImpl,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

type UnaryHandler = (request: MessageShape<DescMessage>, context: ReturnType<typeof createHandlerContext>) => unknown;

export function createInProcessTransport<S extends DescService>(service: S, impl: ServiceImpl<S>, interceptors: readonly Interceptor[] = []): Transport {
  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const url = `/${service.typeName}/${method.name}`;
      const context = createHandlerContext({
        service,
        method,
        protocolName: "in-process",
        requestMethod: "POST",
        url,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(signal ? { requestSignal: signal } : {}),
        ...(header ? { requestHeader: header } : {}),
        ...(contextValues ? { contextValues } : {}),
      });
      const handler = (impl as unknown as Record<string, UnaryHandler | undefined>)[method.localName];
      const call = async (req: UnaryRequest<I, O>): Promise<UnaryResponse<I, O>> => {
        if (!handler) throw new ConnectError(`${url} is not implemented`, Code.Unimplemented);
        try {
          const out = (await handler.call(impl, req.message, context)) as MessageInitShape<O>;
          const message = isMessage(out, method.output) ? out : create(method.output, out);
          return { stream: false, service, method, header: context.responseHeader, trailer: context.responseTrailer, message };
        } catch (e) {
          // What a remote client would see: unknown throws become INTERNAL.
          throw ConnectError.from(e);
        }
      };
      // The first interceptor is the outermost, as in Connect's own handlers.
      const next = interceptors.reduceRight<(req: UnaryRequest<I, O>) => Promise<UnaryResponse<I, O>>>(
        (inner, interceptor) => interceptor(inner as never) as never,
        call,
      );
      const message = isMessage(input, method.input) ? input : create(method.input, input);
      return next({
        stream: false,
        service,
        method,
        requestMethod: "POST",
        url,
        signal: context.signal,
        header: new Headers(header),
        contextValues: context.values,
        message,
      });
    },
    stream() {
      return Promise.reject(new ConnectError("streaming calls are not supported in process", Code.Unimplemented));
    },
  };
}
