// B3 of scripts/bench: cold start. For each function's real shim (with its built wasm) and for a
// bare Deno.serve hello-world, the time from spawning `deno run` to the first `GET /health` 200,
// polled every 2 ms; and each module's wasm instantiation (bench/instantiate.ts, in a fresh
// process each run). One unmeasured run first fills Deno's transpile cache, as a deployed
// function has it. Medians of RUNS runs; prints one JSON object:
// {"start_ms": {"hello": ms, "trip-events": ms, …}, "instantiate_ms": {"trip-events": ms, …}}.
const RUNS = 5;
const ROOT = new URL("../", import.meta.url).pathname;
const FUNCTIONS = ["trip-events", "ai-processing"];
const ENV = {
  WEBHOOK_SECRET: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  SUPABASE_URL: "http://127.0.0.1:9",
  SUPABASE_SERVICE_ROLE_KEY: "service-role-key-for-benchmarks",
  OPENAI_API_KEY: "sk-benchmarks",
};

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Milliseconds from spawning the server to its first /health 200. */
async function startToHealthy(entrypoint: string, healthPath: string): Promise<number> {
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
        if (response.status === 200) return performance.now() - started;
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

async function medianOf(measure: () => Promise<number>): Promise<number> {
  await measure();
  const runs = [];
  for (let run = 0; run < RUNS; run++) runs.push(await measure());
  return median(runs);
}

const servers: Record<string, [string, string]> = { hello: ["bench/hello.ts", "/health"] };
for (const name of FUNCTIONS) {
  servers[name] = [`supabase/functions/${name}/index.ts`, `/${name}/health`];
}
const figures = {
  start_ms: {} as Record<string, number>,
  instantiate_ms: {} as Record<string, number>,
};
for (const [name, [entrypoint, healthPath]] of Object.entries(servers)) {
  figures.start_ms[name] = await medianOf(() => startToHealthy(entrypoint, healthPath));
}
for (const name of FUNCTIONS) {
  figures.instantiate_ms[name] = await medianOf(() => instantiateMs(name));
}
console.log(JSON.stringify(figures));
