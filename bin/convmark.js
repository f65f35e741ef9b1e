#!/usr/bin/env node
// `npx convmark …`: runs the CLI's TypeScript sources through tsx (a runtime dependency), so it works
// right after `npm ci`, without a build.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
