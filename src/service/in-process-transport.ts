/**
 * A Transport that calls service implementations directly, for callers in the same process (the
 * vendor dialects, the REST transcoder). The interceptors (logging, metrics, auth) run as they do
 * for network calls, but nothing is serialized and no second protocol pass runs:
 * createRouterTransport would encode and decode every request and response once more.
 * Unary and server-streaming methods are supported.
 */
import {
  create,
  isMessage,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  type ContextValues,
  type Interceptor,
  type ServiceImpl,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

type Handler = (request: MessageShape<DescMessage>, context: ReturnType<typeof createHandlerContext>) => unknown;

/** One service and its implementation. */
export interface InProcessService<S extends DescService = DescService> {
  readonly service: S;
  readonly impl: ServiceImpl<S>;
}

export function createInProcessTransport<S extends DescService>(service: S, impl: ServiceImpl<S>, interceptors: readonly Interceptor[] = []): Transport {
  return createInProcessServicesTransport([{ service, impl } as InProcessService], interceptors);
}

/** The same for several services; a method of any other service answers UNIMPLEMENTED. */
export function createInProcessServicesTransport(services: readonly InProcessService[], interceptors: readonly Interceptor[] = []): Transport {
  const impls = new Map(services.map((s) => [s.service.typeName, s.impl as unknown as Record<string, Handler | undefined>]));
  // The first interceptor is the outermost, as in Connect's own handlers.
  const wrap = <F>(call: F): F => interceptors.reduceRight<F>((inner, interceptor) => interceptor(inner as never) as F, call);

  function prepare(
    method: DescMethodUnary | DescMethodStreaming,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: ConstructorParameters<typeof Headers>[0] | undefined,
    contextValues: ContextValues | undefined,
  ) {
    const service = method.parent;
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
    const handler = impls.get(service.typeName)?.[method.localName];
    const common = { service, requestMethod: "POST", url, signal: context.signal, header: new Headers(header), contextValues: context.values };
    return { service, url, context, handler, common };
  }

  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const { service, url, context, handler, common } = prepare(method as DescMethodUnary, signal, timeoutMs, header, contextValues);
      const call = async (req: UnaryRequest<I, O>): Promise<UnaryResponse<I, O>> => {
        if (!handler) throw new ConnectError(`${url} is not implemented`, Code.Unimplemented);
        try {
          const out = (await handler(req.message, context)) as MessageInitShape<O>;
          const message = isMessage(out, method.output) ? out : create(method.output, out);
          return { stream: false, service, method, header: context.responseHeader, trailer: context.responseTrailer, message };
        } catch (e) {
          // What a remote client would see: unknown throws become INTERNAL.
          throw ConnectError.from(e);
        }
      };
      const message = isMessage(input, method.input) ? input : create(method.input, input);
      return wrap(call)({ stream: false, method, ...common, message } as UnaryRequest<I, O>);
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      if (method.methodKind !== "server_streaming") {
        throw new ConnectError("only server-streaming calls are supported in process", Code.Unimplemented);
      }
      const { service, url, context, handler, common } = prepare(method as DescMethodStreaming, signal, timeoutMs, header, contextValues);
      const call = async (req: StreamRequest<I, O>): Promise<StreamResponse<I, O>> => {
        if (!handler) throw new ConnectError(`${url} is not implemented`, Code.Unimplemented);
        let first: MessageShape<I> | undefined;
        for await (const m of req.message) {
          if (first) throw new ConnectError("a server-streaming call takes exactly one request message", Code.InvalidArgument);
          first = m;
        }
        if (!first) throw new ConnectError("a server-streaming call takes exactly one request message", Code.InvalidArgument);
        const out = handler(first, context) as AsyncIterable<MessageInitShape<O>>;
        async function* messages(): AsyncIterable<MessageShape<O>> {
          try {
            for await (const m of out) yield isMessage(m, method.output) ? m : create(method.output, m);
          } catch (e) {
            throw ConnectError.from(e);
          }
        }
        return { stream: true, service, method, header: context.responseHeader, trailer: context.responseTrailer, message: messages() };
      };
      async function* requests(): AsyncIterable<MessageShape<I>> {
        for await (const m of input) yield isMessage(m, method.input) ? m : create(method.input, m);
      }
      return wrap(call)({ stream: true, method, ...common, message: requests() } as StreamRequest<I, O>);
    },
  };
}
