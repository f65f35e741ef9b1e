import { defineConfig } from "vitest/config";

/**
 * The bounded fuzz suite's time is the server's cost per body on a machine of two cores (issue 7:
 * "under 30 s in all"), so it runs alone, after every other file: beside another file's server its
 * time would measure the neighbour too.
 */
const ALONE = ["test/hardening/fuzz.e2e.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end suites start real servers on loopback; forks keep native modules isolated.
    pool: "forks",
    // The JSON report lets .ci/run print a plain "N passed, N failed" closing line.
    reporters: ["default", ["json", { outputFile: "test-results.json" }]],
    projects: [
      { extends: true, test: { name: "suite", include: ["test/**/*.test.ts"], exclude: ALONE, sequence: { groupOrder: 0 } } },
      // It fuzzes the server as `npm start` runs it: test/support/build-server.global.ts builds dist/ first when stale.
      { extends: true, test: { name: "alone", include: ALONE, sequence: { groupOrder: 1 }, globalSetup: ["test/support/build-server.global.ts"] } },
    ],
  },
});
