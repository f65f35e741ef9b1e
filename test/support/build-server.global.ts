/**
 * vitest globalSetup of the "alone" project (vitest.config.ts): builds the server (dist/, tsc) before
 * any file runs, if a source is newer than the build, so that the fuzz suite's own time is fuzzing.
 */
import { ensureServerBuilt } from "./server-process.js";

export function setup(): void {
  const ms = ensureServerBuilt();
  if (ms > 0) console.log(`built the server for the fuzz suite (dist/, tsc) in ${(ms / 1000).toFixed(1)} s`);
}
