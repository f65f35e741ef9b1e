/**
 * A free loopback port for a server a test starts in another process (which must be told its port
 * before it binds). Picked at random below the kernel's ephemeral range (/proc's
 * ip_local_port_range, 32768-60999 by default), where the outgoing connections of the other test
 * files take their local ports: a port taken from listen(0) sits in that range, and between closing
 * it here and the child binding it, one of the thousands of client sockets a fuzz burst opens can
 * take it (the child then exits with EADDRINUSE). Checked by binding it once here.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const LOW = 20_000;

function ephemeralStart(): number {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOW + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const canBind = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });

export async function freePort(): Promise<number> {
  const high = ephemeralStart();
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (high - LOW));
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port found in ${LOW}-${high - 1}`);
}
