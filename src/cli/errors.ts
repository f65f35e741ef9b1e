/** Exit codes scripts can rely on, and the error that means "you called it wrong". */
export const EXIT_OK = 0;
/** An RPC failed, or some items of a batch did. */
export const EXIT_FAILED = 1;
/** Bad arguments or options. */
export const EXIT_USAGE = 2;

/** Bad command-line input: printed with the command's usage hint, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Some items failed; the summary was already printed. Exit code 1. */
export class PartialFailure extends Error {
  override readonly name = "PartialFailure";
}

/** Largest import batch: one UpdateConversations call (the server's default limit is 20,000). */
export const MAX_IMPORT_BATCH = 10_000;
