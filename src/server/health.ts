// grpc.health.v1.Health as a Connect service, backed by a small status registry that shutdown can flip.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

type Listener = (status: ServingStatus) => void;

/** Serving status per service name; "" is the whole server. */
export interface HealthRegistry {
  /** undefined for a name that was never registered. */
  get(service: string): ServingStatus | undefined;
  set(service: string, status: ServingStatus): void;
  /** Sets every known name, including "". */
  setAll(status: ServingStatus): void;
  names(): string[];
  /** Calls listener on every change of this name (registered or not); returns the unsubscribe function. */
  subscribe(service: string, listener: Listener): () => void;
  /**
   * Flips everything to NOT_SERVING, ignores later set() calls and ends open Watch streams after they
   * have seen NOT_SERVING, so they do not hold a graceful shutdown open until its grace timeout.
   */
  shutdown(): void;
  readonly isShutdown: boolean;
  /** Aborted when shutdown() is called; Watch streams end on it. */
  readonly shutdownSignal: AbortSignal;
}

export function createHealthRegistry(
  services: Iterable<string>,
  initial: ServingStatus = ServingStatus.SERVING,
): HealthRegistry {
  const statuses = new Map<string, ServingStatus>([["", initial]]);
  for (const s of services) statuses.set(s, initial);
  const listeners = new Map<string, Set<Listener>>();
  const shutdownController = new AbortController();

  const update = (service: string, status: ServingStatus): void => {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const l of listeners.get(service) ?? []) l(status);
  };

  return {
    get: (service) => statuses.get(service),
    set(service, status) {
      if (!shutdownController.signal.aborted) update(service, status);
    },
    setAll(status) {
      if (shutdownController.signal.aborted) return;
      for (const name of [...statuses.keys()]) update(name, status);
    },
    names: () => [...statuses.keys()],
    subscribe(service, listener) {
      let set = listeners.get(service);
      if (!set) listeners.set(service, (set = new Set()));
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(service);
      };
    },
    shutdown() {
      if (shutdownController.signal.aborted) return;
      for (const name of [...statuses.keys()]) update(name, ServingStatus.NOT_SERVING);
      shutdownController.abort();
    },
    get isShutdown() {
      return shutdownController.signal.aborted;
    },
    shutdownSignal: shutdownController.signal,
  };
}

export function createHealthService(registry: HealthRegistry): ServiceImpl<typeof Health> {
  const response = (status: ServingStatus): HealthCheckResponse => create(HealthCheckResponseSchema, { status });

  return {
    check(req) {
      const status = registry.get(req.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      }
      return response(status);
    },

    async *watch(req, ctx) {
      // Queue changes between yields; only the latest status matters to a watcher.
      let pending: ServingStatus | undefined = registry.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
      let wake: (() => void) | undefined;
      const unsubscribe = registry.subscribe(req.service, (status) => {
        pending = status;
        wake?.();
      });
      const onStop = (): void => wake?.();
      ctx.signal.addEventListener("abort", onStop);
      registry.shutdownSignal.addEventListener("abort", onStop);
      let last: ServingStatus | undefined;
      try {
        for (;;) {
          if (pending !== undefined && pending !== last) {
            last = pending;
            pending = undefined;
            yield response(last);
            continue;
          }
          pending = undefined;
          if (ctx.signal.aborted || registry.isShutdown) return;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener("abort", onStop);
        registry.shutdownSignal.removeEventListener("abort", onStop);
      }
    },

    list() {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const name of registry.names()) statuses[name] = response(registry.get(name)!);
      return create(HealthListResponseSchema, { statuses });
    },
  };
}
