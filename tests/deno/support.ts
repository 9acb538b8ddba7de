// Starting real processes for the contract tests: a function's shim in Deno, or the whole local
// stack, each on a free loopback port, with their output kept for inspection.
import { Webhook } from "standardwebhooks";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
export const FUNCTIONS = ["trip-events", "ai-processing"] as const;

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

export interface Server {
  /** Base URL of the function, e.g. http://127.0.0.1:PORT/trip-events */
  url: string;
  /** Everything the process printed so far, line by line. */
  output: string[];
  stop(): Promise<void>;
}

async function collect(stream: ReadableStream<Uint8Array>, into: string[]) {
  const lines = stream.pipeThrough(new TextDecoderStream());
  let pending = "";
  for await (const chunk of lines) {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    into.push(...parts);
  }
  if (pending) into.push(pending);
}

async function waitForHealth(
  url: string,
  child: Deno.ChildProcess,
  output: string[],
  headers: Record<string, string> = {},
) {
  const exited = child.status.then((status) => status);
  for (let tries = 0; tries < 300; tries++) {
    const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 50))]);
    if (done) throw new Error(`process exited during start-up:\n${output.join("\n")}`);
    try {
      const response = await fetch(`${url}/health`, { headers });
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
  }
  throw new Error(`no /health 200 from ${url} within 15 s:\n${output.join("\n")}`);
}

function spawn(command: string, args: string[], env: Record<string, string>) {
  const child = new Deno.Command(command, {
    args,
    env,
    clearEnv: true,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const reading = Promise.all([collect(child.stdout, output), collect(child.stderr, output)]);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
    await reading;
  };
  return { child, output, stop };
}

/** Runs one function's real shim with its built wasm and exactly `env`. */
export async function startFunction(
  name: string,
  env: Record<string, string>,
): Promise<Server> {
  const port = freePort();
  const { child, output, stop } = spawn(Deno.execPath(), [
    "run",
    "--quiet",
    "--allow-net",
    "--allow-env",
    `--allow-read=${ROOT}supabase/functions/${name}`,
    `supabase/functions/${name}/index.ts`,
  ], { ...env, PORT: String(port) });
  const url = `http://127.0.0.1:${port}/${name}`;
  await waitForHealth(url, child, output).catch(async (error) => {
    await stop();
    throw error;
  });
  return { url, output, stop };
}

/** Runs the main command's server (target/debug/local-stack) on a free port. */
export interface StackOptions {
  /** More local-stack arguments. */
  args?: string[];
  /** The project root holding supabase/config.toml (default: this repository). */
  project?: string;
  /** The functions to wait for (default: both of this repository). */
  functions?: readonly string[];
  /** Headers for the start-up /health checks, e.g. a JWT for verify_jwt functions. */
  healthHeaders?: Record<string, string>;
}

export async function startStack(
  options: StackOptions = {},
): Promise<Server & { api: string; pid: number }> {
  const port = freePort();
  const { child, output, stop } = spawn(`${ROOT}target/debug/local-stack`, [
    "--port",
    String(port),
    "--project",
    options.project ?? ROOT,
    "--deno",
    Deno.execPath(),
    ...(options.args ?? []),
  ], { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp" });
  const api = `http://127.0.0.1:${port}`;
  for (const name of options.functions ?? FUNCTIONS) {
    const url = `${api}/functions/v1/${name}`;
    await waitForHealth(url, child, output, options.healthHeaders).catch(async (error) => {
      await stop();
      throw error;
    });
  }
  return { url: `${api}/functions/v1`, api, pid: child.pid, output, stop };
}

export interface SignedDelivery {
  id?: string;
  timestamp?: Date;
  secret?: string;
  headers?: Record<string, string>;
}

/** Standard Webhooks headers from the reference library, not from our Rust code. */
export function standardHeaders(body: string, options: SignedDelivery = {}) {
  const id = options.id ?? `msg_${crypto.randomUUID()}`;
  const timestamp = options.timestamp ?? new Date();
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": new Webhook(options.secret ?? SECRET).sign(id, timestamp, body),
    ...options.headers,
  };
}

export function signedPost(url: string, body: string, options: SignedDelivery = {}) {
  return fetch(url, { method: "POST", body, headers: standardHeaders(body, options) });
}

export async function jsonOf(response: Response): Promise<[number, Record<string, unknown>]> {
  const text = await response.text();
  return [response.status, text ? JSON.parse(text) : {}];
}

/** The throwaway test database of ./scripts/test. */
export const DB_URL = Deno.env.get("TRIPSAGE_TEST_DB_URL");

/** Runs one SQL statement as the database owner and returns its unaligned output. */
export function sql(query: string): Promise<string> {
  if (!DB_URL) {
    throw new Error(
      "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test (or scripts/db start and set it to $(scripts/db url))",
    );
  }
  return sqlAt(DB_URL, query);
}

/** Runs one SQL statement on the database at `url`; its unaligned output. */
export async function sqlAt(url: string, query: string): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("psql", {
    args: [url, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", query],
  }).output();
  const text = new TextDecoder();
  if (code !== 0) throw new Error(`psql failed: ${text.decode(stderr)}`);
  return text.decode(stdout).trim();
}

/** Polls `query` until it prints `expected`. */
/** Polls `condition` (every 20 ms) until it holds; the deadline is only there to end a hang. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  seconds = 60,
) {
  const deadline = Date.now() + seconds * 1000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${seconds} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function waitFor(query: string, expected: string, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let last = "";
  while (Date.now() < deadline) {
    last = await sql(query);
    if (last === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`after ${seconds} s: ${query} gave ${JSON.stringify(last)}, not ${expected}`);
}

/** The local stack's keys (the Supabase CLI's demo JWT secret and keys). */
export const JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";
export const ANON_KEY =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0";
export const SERVICE_ROLE_KEY =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU";
/** The webhook secret the local stack gives the functions (local-stack/src/keys.rs, seed.sql). */
export const LOCAL_WEBHOOK_SECRET = "whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==";

/** An HS256 JWT signed with the local secret, made with WebCrypto (not our Rust code). */
export async function signJwt(claims: Record<string, unknown>): Promise<string> {
  const encode = (bytes: Uint8Array) =>
    btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const text = (value: unknown) => encode(new TextEncoder().encode(JSON.stringify(value)));
  const input = `${text({ alg: "HS256", typ: "JWT" })}.${text(claims)}`;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(JWT_SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(input));
  return `${input}.${encode(new Uint8Array(signature))}`;
}

/** A new row in auth.users and an access token for it, as GoTrue would issue. */
export async function createUser(): Promise<{ id: string; token: string }> {
  const [id, email] = (await sql(
    `insert into auth.users (id, email, role, aud)
     values (gen_random_uuid(), gen_random_uuid() || '@example.com', 'authenticated', 'authenticated')
     returning id || '|' || email`,
  )).split("|");
  const now = Math.floor(Date.now() / 1000);
  const token = await signJwt({
    aud: "authenticated",
    exp: now + 3600,
    iat: now,
    sub: id,
    email,
    role: "authenticated",
  });
  return { id, token };
}
