// `node bench/speed-probe.mjs`: a fixed piece of single-threaded work (3 M small objects made and
// stringified) and how long it took. The machine's speed varies by up to 2x over a day (shared
// vCPUs): run it before and after a measurement to see whether the machine moved in between.
const t0 = performance.now();
let chars = 0;
let kept = [];
for (let i = 0; i < 3e6; i++) {
  const o = { i, s: "k" + i };
  kept.push(o);
  if (kept.length > 1000) kept = [];
  chars += JSON.stringify(o).length;
}
console.log(`speed probe ${Math.round(performance.now() - t0)} ms (${chars} characters)`);
