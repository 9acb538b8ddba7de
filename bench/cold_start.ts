// B3 of scripts/bench: cold start. For each function's real shim (with its built wasm), each
// TypeScript peer (bench/peers/) and a bare Deno.serve hello-world, the time from spawning
// `deno run` to the first `GET /health` 200, polled every 2 ms, and the process's resident memory
// right after that answer; and each module's wasm instantiation (bench/instantiate.ts, in a fresh
// process each run). The servers take turns, run by run. One unmeasured run of each first fills
// Deno's transpile cache, as a deployed function has it. Medians of RUNS runs; prints one JSON
// object: {"start_ms": {name: ms}, "rss_mib": {name: MiB}, "anonymous_mib": {name: MiB},
// "instantiate_ms": {function: ms}}. Anonymous memory is the part of the resident memory that is
// the process's own (heaps, wasm memory, compiled code), not pages of the deno executable.
import { ENV, freePort, median } from "./support.ts";

const RUNS = Number(Deno.env.get("BENCH_COLD_RUNS") ?? 7);
const ROOT = new URL("../", import.meta.url).pathname;
const FUNCTIONS = ["trip-events", "ai-processing"];

/** Resident memory of a process, in MiB (Linux). */
function memoryMib(pid: number): { rss: number; anonymous: number } {
  const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  const field = (name: string) =>
    Number(rollup.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN) / 1024;
  return { rss: field("Rss"), anonymous: field("Anonymous") };
}

type Start = { ms: number; rssMib: number; anonymousMib: number };

/** Milliseconds from spawning the server to its first /health 200, and its memory then. */
async function startToHealthy(entrypoint: string, healthPath: string): Promise<Start> {
  const port = freePort();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-net", "--allow-env", "--allow-read", entrypoint],
    env: { ...ENV, PORT: String(port) },
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    while (performance.now() - started < 15_000) {
      try {
        const response = await fetch(`http://127.0.0.1:${port}${healthPath}`);
        await response.body?.cancel();
        if (response.status === 200) {
          const memory = memoryMib(child.pid);
          return {
            ms: performance.now() - started,
            rssMib: memory.rss,
            anonymousMib: memory.anonymous,
          };
        }
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    throw new Error(`${entrypoint}: no /health 200 within 15 s`);
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

async function instantiateMs(name: string): Promise<number> {
  const { success, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "bench/instantiate.ts", name],
    cwd: ROOT,
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`bench/instantiate.ts ${name} failed`);
  return Number(new TextDecoder().decode(stdout));
}

const servers: Record<string, [string, string]> = {
  "bare Deno.serve": ["bench/hello.ts", "/health"],
  "TS + WebCrypto": ["bench/peers/webcrypto.ts", "/trip-events/health"],
  "TS + WebCrypto + supabase-js": ["bench/peers/webcrypto_supabase.ts", "/trip-events/health"],
  "TS + standardwebhooks": ["bench/peers/standardwebhooks.ts", "/trip-events/health"],
};
for (const name of FUNCTIONS) {
  servers[name] = [`supabase/functions/${name}/index.ts`, `/${name}/health`];
}
const starts: Record<string, Start[]> = {};
for (const [entrypoint, healthPath] of Object.values(servers)) {
  await startToHealthy(entrypoint, healthPath);
}
for (let run = 0; run < RUNS; run++) {
  for (const [name, [entrypoint, healthPath]] of Object.entries(servers)) {
    (starts[name] ??= []).push(await startToHealthy(entrypoint, healthPath));
  }
}
const instantiate: Record<string, number> = {};
for (const name of FUNCTIONS) {
  await instantiateMs(name);
  const runs = [];
  for (let run = 0; run < RUNS; run++) runs.push(await instantiateMs(name));
  instantiate[name] = median(runs);
}
const of = (pick: (start: Start) => number) =>
  Object.fromEntries(Object.entries(starts).map(([name, runs]) => [name, median(runs.map(pick))]));
console.log(JSON.stringify({
  start_ms: of((start) => start.ms),
  rss_mib: of((start) => start.rssMib),
  anonymous_mib: of((start) => start.anonymousMib),
  instantiate_ms: instantiate,
}));
