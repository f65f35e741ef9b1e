/** The console's clients: MarkService and DirectoryService over Connect JSON on this page's origin. */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { anyTypeRegistry } from "../../src/service/json-registry.js";

const TOKEN_KEY = "convmark.token";

/** The bearer token of this tab (sessionStorage: gone when the tab closes, never in the URL). */
export const token = {
  get: (): string => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set: (value: string): void => {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

const auth: Interceptor = (next) => (req) => {
  const t = token.get();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  useBinaryFormat: false,
  jsonOptions: { registry: anyTypeRegistry },
  interceptors: [auth],
});

export const marks = createClient(MarkService, transport);
export const directory = createClient(DirectoryService, transport);
