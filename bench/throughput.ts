// B1 of scripts/bench: requests per second under the same wrk load (1 thread, 32 connections),
// on the accepted path (a signed `test.webhook`, 200) and the rejected one (a wrong signature,
// 401), for both functions' real shims, the TypeScript peers (bench/peers/), the contract with no
// signature check (the ceiling: it answers the rejected path's event with 422) and a bare
// `Deno.serve` (200 to both). Every server runs at once; the runs alternate server by server,
// ROUNDS times, so a slow moment of the machine falls on all of them. Prints one JSON object:
// {"seconds", "rounds", "servers": {name: {"accepted": {"rps": [...], "requests", "unexpected",
// "socket_errors"}, "rejected": {...}}}}. wrk counts only non-2xx answers, so `unexpected` counts
// the answers on the wrong side of 2xx for the status that server gives on that path.
// Usage: deno run --allow-run --allow-net --allow-read --allow-env bench/throughput.ts
import { ENV, freePort } from "./support.ts";

const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 2);
const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 8);
const ROOT = new URL("../", import.meta.url).pathname;
const SECRET = ENV.WEBHOOK_SECRET;
// name → [entry point, URL path]
const SERVERS: Record<string, [string, string]> = {
  "trip-events": ["supabase/functions/trip-events/index.ts", "/trip-events"],
  "ai-processing": ["supabase/functions/ai-processing/index.ts", "/ai-processing"],
  "TS + standardwebhooks": ["bench/peers/standardwebhooks.ts", "/trip-events"],
  "TS + WebCrypto": ["bench/peers/webcrypto.ts", "/trip-events"],
  "TS contract, no signature check": ["bench/peers/unchecked.ts", "/trip-events"],
  "bare Deno.serve": ["bench/hello.ts", "/"],
};
// The status each server answers on each path, where it is not 200 accepted and 401 rejected.
const STATUS: Record<string, { accepted: number; rejected: number }> = {
  "TS contract, no signature check": { accepted: 200, rejected: 422 },
  "bare Deno.serve": { accepted: 200, rejected: 200 },
};
const BODY = JSON.stringify({
  event: "test.webhook",
  trip_id: 42,
  operation: "INSERT",
  user_id: "8d0c2a8e-3f1b-4c57-9a0e-2b6f5d1c7e94",
  added_by: "1f3e5a7c-9b2d-4e6f-8a1c-3d5e7f9a1b2c",
  permission_level: "edit",
  timestamp: "2026-12-01T12:00:00Z",
});

/** `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`, as the SQL sender signs. */
async function sign(id: string, timestamp: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    Uint8Array.from(atob(SECRET.slice("whsec_".length)), (c) => c.charCodeAt(0)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${id}.${timestamp}.${body}`),
  );
  return `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`;
}

async function waitUntilServing(url: string) {
  for (let attempt = 0; attempt < 150; attempt++) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer within 15 s`);
}

type Run = { rps: number; requests: number; non2xx: number; socketErrors: boolean };

async function wrk(url: string, script: string, env: Record<string, string>): Promise<Run> {
  const { success, stdout, stderr } = await new Deno.Command("wrk", {
    args: ["-t1", "-c32", `-d${SECONDS}s`, "-s", script, url],
    env,
  }).output();
  const text = new TextDecoder().decode(stdout);
  if (!success) throw new Error(`wrk failed: ${new TextDecoder().decode(stderr)}`);
  const figure = (pattern: RegExp) => Number(text.match(pattern)?.[1] ?? 0);
  return {
    rps: figure(/Requests\/sec:\s+([\d.]+)/),
    requests: figure(/(\d+) requests in/),
    non2xx: figure(/Non-2xx or 3xx responses:\s+(\d+)/),
    socketErrors: /Socket errors/.test(text),
  };
}

const children: Deno.ChildProcess[] = [];
const urls: Record<string, string> = {};
try {
  for (const [name, [entry, path]] of Object.entries(SERVERS)) {
    const port = freePort();
    children.push(
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-net", "--allow-env", "--allow-read", entry],
        // Only what a deployed function gets, and what Deno itself needs.
        env: {
          PATH: Deno.env.get("PATH") ?? "",
          HOME: Deno.env.get("HOME") ?? "",
          ...ENV,
          PORT: String(port),
        },
        clearEnv: true,
        cwd: ROOT,
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
    urls[name] = `http://127.0.0.1:${port}${path}`;
    await waitUntilServing(`${urls[name].replace(/\/$/, "")}/health`);
  }

  // One signature for the whole run: the timestamp stays within the 300 s tolerance.
  const timestamp = String(Math.floor(Date.now() / 1000));
  const accepted = {
    BODY,
    TIMESTAMP: timestamp,
    SIGNATURE: await sign("msg_bench_test_webhook", timestamp, BODY),
  };
  const paths = {
    accepted: { script: `${ROOT}bench/signed_test_webhook.lua`, env: accepted },
    rejected: { script: `${ROOT}bench/invalid_signature.lua`, env: {} },
  };
  const figures: Record<string, Record<string, Run[]>> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of Object.keys(SERVERS)) {
      for (const [path, { script, env }] of Object.entries(paths)) {
        const run = await wrk(urls[name], script, env);
        ((figures[name] ??= {})[path] ??= []).push(run);
        console.error(`[B1] round ${round + 1}, ${name}, ${path}: ${run.rps} requests/s`);
      }
    }
  }
  const servers = Object.fromEntries(
    Object.entries(figures).map(([name, byPath]) => [
      name,
      Object.fromEntries(
        Object.entries(byPath).map(([path, runs]) => {
          const expected = (STATUS[name] ?? { accepted: 200, rejected: 401 })[
            path as keyof typeof paths
          ];
          const requests = runs.reduce((sum, run) => sum + run.requests, 0);
          const non2xx = runs.reduce((sum, run) => sum + run.non2xx, 0);
          return [path, {
            rps: runs.map((run) => run.rps),
            requests,
            unexpected: expected === 200 ? non2xx : requests - non2xx,
            socket_errors: runs.some((run) => run.socketErrors),
          }];
        }),
      ),
    ]),
  );
  console.log(JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, servers }));
} finally {
  for (const child of children) {
    child.kill("SIGTERM");
    await child.status;
  }
}
