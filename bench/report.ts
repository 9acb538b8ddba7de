// The table of scripts/bench: reads the figures each part wrote (DIR/b1.json … DIR/b7.json),
// prints one markdown table with every figure, and writes it to DIR/results.md. A part without
// figures, or whose figures fail their check (B1: every answer 2xx or not as that server answers
// that path, no socket errors; B6: nothing lost or duplicated; B7: events measured while embedding),
// shows as FAILED and makes this
// exit with 1.
// Usage: deno run --allow-read --allow-write=DIR report.ts DIR "MACHINE"
// deno-lint-ignore-file no-explicit-any
import { median } from "./support.ts";

const [dir, machine] = Deno.args;
const rows: [string, string, string][] = [];
let failures = 0;

function figures(part: string): any | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/${part}.json`));
  } catch {
    return undefined;
  }
}

function fail(part: string, measure: string, why: string) {
  failures++;
  rows.push([part, measure, `**FAILED**: ${why} (see ${dir}/${part.toLowerCase()}.log)`]);
}

const number = (value: number, digits = 0) =>
  value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (value: number) => `${number(value, value < 10 ? 2 : 1)} ms`;
const us = (value: number) => `${number(value, value < 100 ? 1 : 0)} µs`;
const kb = (bytes: number) => `${number(bytes / 1024, 1)} KiB`;

const b1 = figures("b1");
const b1Measure = "requests/s, wrk 1 thread × 32 connections";
const FUNCTIONS = ["trip-events", "ai-processing"];
const PEERS = [
  "TS + WebCrypto",
  "TS + standardwebhooks",
  "TS contract, no signature check",
  "bare Deno.serve",
];
if (!b1) {
  fail("B1", b1Measure, "no figures");
} else {
  const servers: Record<string, any> = b1.servers;
  const runs = `${b1.rounds} alternating runs of ${b1.seconds} s each`;
  for (
    const [path, label] of [["accepted", "signed `test.webhook` → 200"], [
      "rejected",
      "bad signature → 401",
    ]]
  ) {
    const rps = (name: string) => median(servers[name][path].rps);
    const range = (values: number[]) =>
      values.length > 1 ? ` (${number(Math.min(...values))}–${number(Math.max(...values))})` : "";
    rows.push([
      "B1",
      `${label}, ${b1Measure}, median of ${runs}`,
      Object.keys(servers).map((name) =>
        `${name}: ${number(rps(name))}${range(servers[name][path].rps)}`
      ).join(" · "),
    ]);
    rows.push([
      "B1",
      `${label}: each function ÷ each peer`,
      FUNCTIONS.map((fn) =>
        `${fn}: ${PEERS.map((peer) => `÷ ${peer} ${number(rps(fn) / rps(peer), 2)}`).join(", ")}`
      ).join(" · "),
    ]);
    for (const [name, figures] of Object.entries(servers)) {
      const { requests, unexpected, socket_errors } = figures[path];
      if (!requests || unexpected || socket_errors) {
        fail(
          "B1",
          `${label}, ${name}`,
          `${unexpected} answers of the wrong status, or sockets failed`,
        );
      }
    }
  }
}

const b2 = figures("b2");
const sizes = [["1024", "1 KB"], ["16384", "16 KB"], ["262144", "256 KB"]];
const perSize = (values: Record<string, number>) =>
  sizes.map(([size, label]) => `${label}: ${us(values[size])}`).join(" · ");
if (!b2) {
  fail("B2", "signature verification, µs/call", "no figures");
} else {
  rows.push(["B2", "verification µs/call: our Rust in wasm, from Deno", perSize(b2.deno.wasm)]);
  rows.push([
    "B2",
    "verification µs/call: WebCrypto HMAC-SHA256 in Deno",
    perSize(b2.deno.webcrypto),
  ]);
  rows.push(["B2", "verification µs/call: our Rust, native", perSize(b2.native)]);
}

const b3 = figures("b3");
if (!b3) {
  fail("B3", "cold start", "no figures");
} else {
  const start: Record<string, number> = b3.timings.start_ms;
  const rss: Record<string, number> = b3.timings.rss_mib;
  const list = (values: Record<string, number>, unit: (value: number) => string) =>
    Object.entries(values).map(([name, value]) => `${name}: ${unit(value)}`).join(" · ");
  rows.push(["B3", "spawn → first `GET /health` 200, median", list(start, ms)]);
  rows.push([
    "B3",
    "cold start: each function ÷ the supabase-js peer, ÷ bare `Deno.serve`",
    FUNCTIONS.map((fn) =>
      `${fn}: ${number(start[fn] / start["TS + WebCrypto + supabase-js"], 2)}, ${
        number(start[fn] / start["bare Deno.serve"], 2)
      }`
    ).join(" · "),
  ]);
  rows.push([
    "B3",
    "resident memory after that first answer, median",
    list(rss, (value) => `${number(value, 1)} MiB`),
  ]);
  rows.push([
    "B3",
    "memory: each function − the WebCrypto peer",
    FUNCTIONS.map((fn) => `${fn}: ${number(rss[fn] - rss["TS + WebCrypto"], 1)} MiB`).join(" · "),
  ]);
  const anonymous: Record<string, number> = b3.timings.anonymous_mib;
  rows.push([
    "B3",
    "of that memory, the process's own (anonymous; the rest is pages of the deno executable), " +
    "each function − the WebCrypto peer",
    FUNCTIONS.map((fn) =>
      `${fn}: ${number(anonymous[fn], 1)} MiB, ${
        number(anonymous[fn] - anonymous["TS + WebCrypto"], 1)
      } MiB more`
    ).join(" · "),
  ]);
  rows.push([
    "B3",
    "wasm compile + instantiate (`initSync`), median",
    Object.entries(b3.timings.instantiate_ms)
      .map(([name, value]) => `${name}: ${ms(value as number)}`).join(" · "),
  ]);
  rows.push([
    "B3",
    "`.wasm` size, raw / gzip -9",
    Object.entries(b3.sizes)
      .map(([name, [raw, gzip]]: [string, any]) => `${name}: ${kb(raw)} / ${kb(gzip)}`)
      .join(" · "),
  ]);
}

const b4 = figures("b4");
const b4Measure = "commit of a collaborator insert → notification visible";
if (!b4) {
  fail("B4", b4Measure, "no figures");
} else {
  rows.push([
    "B4",
    `${b4Measure}, ${number(b4.events)} inserts one at a time`,
    `p50 ${ms(b4.p50_ms)} · p99 ${ms(b4.p99_ms)} (p90 ${ms(b4.p90_ms)}, max ${ms(b4.max_ms)})`,
  ]);
}

const b5 = figures("b5");
if (!b5) {
  fail("B5", "embeddings", "no figures");
} else {
  const minimumCalls = Math.ceil(b5.memories / b5.max_inputs);
  const minimumS = minimumCalls * b5.provider_latency_ms / 1000;
  const of = `${number(b5.memories)} memories, provider ${b5.provider_latency_ms} ms/call`;
  rows.push([
    "B5",
    `embeddings wall time, commit → last vector stored (${of})`,
    `${number(b5.wall_s, 1)} s`,
  ]);
  rows.push([
    "B5",
    "provider calls; ÷ one call per memory (deliveries retried)",
    `${number(b5.calls)}; ${number(b5.calls / b5.memories, 4)} (${b5.retries} retried)`,
  ]);
  rows.push([
    "B5",
    `wall time ÷ provider-bound minimum (ceil(${b5.memories} / ${b5.max_inputs} inputs per call) ` +
    `= ${minimumCalls} calls × ${b5.provider_latency_ms} ms, one after another = ${minimumS} s)`,
    `${number(b5.wall_s / minimumS, 1)}×`,
  ]);
  rows.push([
    "B5",
    `the database alone: the same vectors inserted in SQL, ${b5.store_chunk} per statement, ` +
    "into an empty table with the same HNSW index; wall time ÷ that",
    `${number(b5.store_floor_s, 1)} s; ${number(b5.wall_s / b5.store_floor_s, 1)}×`,
  ]);
}

for (const [part, label] of [["b6", "B6"], ["b6c", "B6"], ["b6b", "B6"]]) {
  const b6 = figures(part);
  const b6Measure = part === "b6c"
    ? "collaborators added as 1,000 transactions from 8 clients"
    : `collaborators added in one statement${part === "b6b" ? ", pg_net.batch_size 1000" : ""}`;
  if (!b6) {
    fail(part.toUpperCase(), b6Measure, "no figures");
    continue;
  }
  rows.push([
    label,
    `${number(b6.collaborators)} ${b6Measure}: notified, e-mailed, lost, duplicates`,
    `${number(b6.notified)} notified · ${number(b6.emailed)} e-mailed · lost ${b6.lost} · ` +
    `duplicates ${b6.duplicates} (${b6.retries} retries, ${b6.dead} dead)`,
  ]);
  const seconds = (value: number | null) => value === null ? "never" : `${number(value, 2)} s`;
  const cpu = Object.entries(b6.cpu_ms_per_delivery ?? {})
    .map(([name, value]) => `${name} ${ms(value as number)}`).join(", ");
  rows.push([
    label,
    "first insert → all notifications visible; → drained (all `webhook_logs` succeeded); " +
    "deliveries per second; CPU per delivery",
    `${seconds(b6.notified_s)}; ${seconds(b6.drained_s)}; ` +
    `${b6.per_second === null ? "—" : number(b6.per_second)}/s; ${cpu}`,
  ]);
  if (b6.lost || b6.duplicates || b6.dead || b6.drained_s === null) {
    fail(part.toUpperCase(), b6Measure, "lost, duplicated or undelivered webhooks");
  }
}

const b7 = figures("b7");
const b7Measure = "commit of a collaborator insert → notification visible";
if (!b7 || !b7.while_embedding?.events) {
  fail("B7", b7Measure, b7 ? "no notification was measured while embedding" : "no figures");
} else {
  const phase = (label: string, f: any) =>
    rows.push([
      "B7",
      `${b7Measure}, ${label} (${number(f.events)} inserts one at a time)`,
      `p50 ${ms(f.p50_ms)} · p99 ${ms(f.p99_ms)} (max ${ms(f.max_ms)})`,
    ]);
  phase("nothing else running", b7.idle);
  phase(
    `while ai-processing embeds ${number(b7.memories)} memories (done in ${
      number(b7.embedding_s, 1)
    } s), same worker`,
    b7.while_embedding,
  );
}

const widths = [0, 1, 2].map((i) =>
  Math.max(...[["#", "Measure", "Result"], ...rows].map((r) => r[i].length))
);
const line = (cells: string[]) =>
  `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(" | ")} |`;
const table = [
  line(["#", "Measure", "Result"]),
  line(widths.map((width) => "-".repeat(width))),
  ...rows.map(line),
].join("\n");
const header = `scripts/bench, ${new Date().toISOString().slice(0, 16)}Z, ${machine}`;
const markdown = `${header}\n\n${table}\n`;
console.log(markdown);
Deno.writeTextFileSync(`${dir}/results.md`, markdown);
if (failures) Deno.exit(1);
