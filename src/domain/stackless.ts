/**
 * Runs `f` with V8's stack-trace capture off. For the errors a client's bad input causes by the
 * thousand (a body that does not parse, a refused argument) and that are answered to that client,
 * never logged with a stack: capturing a stack walks the frames and, for optimized ones, rebuilds
 * their inlined frames from deoptimization data, which was 5-10 % of the server's CPU per refused
 * call in the fuzz suite (docs/reliability.md). Only the synchronous part of `f` runs stackless;
 * errors that point at a bug (and whose stack is logged) must not be made here.
 */
export function withoutStack<T>(f: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return f();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
