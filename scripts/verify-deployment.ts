// Post-deployment verification (scripts/verify-deployment): checks a Supabase project the way a
// webhook and an operator see it, and reports each check on its own line.
//
//   health <function>          GET /functions/v1/<function>/health is 200 and "healthy"
//   signed test <function>     a test.webhook signed with WEBHOOK_SECRET is answered 200 ok
//   rejects unsigned <fn>      the same request without a signature is answered 401
//   verify_extensions          /rest/v1/rpc/verify_extensions(): no extension "missing"
//   verify_automation_setup    /rest/v1/rpc/verify_automation_setup(): nothing "missing"
//   delivery <webhook>         /rest/v1/rpc/test_webhook(): the database signs and sends a
//                              test.webhook through pg_net, and webhook_logs records it succeeded
//
// Reads SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY and WEBHOOK_SECRET (one or more whsec_ secrets,
// space-separated; the first signs). Prints no secret. Exits 1 if any check failed, 2 when the
// environment is incomplete. `--skip-delivery` leaves out the round trip through the database.

const FUNCTIONS = ["trip-events", "ai-processing"];
const WEBHOOKS: Record<string, string> = {
  trip_events: "trip-events",
  ai_processing: "ai-processing",
};
/** The collector reads pg_net's answers every second; retries wait longer. */
const DELIVERY_WAIT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 20_000;

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** Reported, but does not fail the run. */
  warning?: boolean;
}

function environment() {
  const missing = ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "WEBHOOK_SECRET"]
    .filter((name) => !Deno.env.get(name)?.trim());
  if (missing.length > 0) {
    console.error(
      `verify-deployment: set ${missing.join(", ")} (the project URL, its service_role key and ` +
        "the functions' webhook secret)",
    );
    Deno.exit(2);
  }
  const secret = Deno.env.get("WEBHOOK_SECRET")!.trim().split(/\s+/)[0];
  if (!secret.startsWith("whsec_")) {
    console.error("verify-deployment: WEBHOOK_SECRET must be whsec_<base64> secrets");
    Deno.exit(2);
  }
  return {
    url: Deno.env.get("SUPABASE_URL")!.trim().replace(/\/+$/, ""),
    serviceKey: Deno.env.get("SUPABASE_SERVICE_ROLE_KEY")!.trim(),
    secret,
  };
}

/** Standard Webhooks v1: base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the decoded secret. */
async function sign(secret: string, id: string, timestamp: number, body: string) {
  const raw = Uint8Array.from(atob(secret.slice("whsec_".length)), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey(
    "raw",
    raw,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const content = new TextEncoder().encode(`${id}.${timestamp}.${body}`);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, content));
  return `v1,${btoa(String.fromCharCode(...mac))}`;
}

/** fetch with a timeout; network failures become a status-0 answer with the reason. */
async function request(url: string, init: RequestInit = {}) {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, text, json };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { status: 0, text: reason, json: undefined };
  }
}

/** What an answer said, shortened, for a failed check. */
function said(answer: { status: number; text: string }) {
  const text = answer.text.replace(/\s+/g, " ").slice(0, 200);
  return answer.status === 0 ? `not reachable: ${text}` : `HTTP ${answer.status}: ${text}`;
}

async function health(url: string, name: string): Promise<Check> {
  const answer = await request(`${url}/functions/v1/${name}/health`);
  const body = answer.json as { status?: string; version?: string; missing?: string[] } | undefined;
  if (answer.status === 200 && body?.status === "healthy") {
    return { name: `health ${name}`, ok: true, detail: `healthy, version ${body.version}` };
  }
  if (answer.status === 200 && body?.status === "degraded") {
    const missing = body.missing?.join(", ") || "see the function's checks";
    return { name: `health ${name}`, ok: false, detail: `degraded: missing ${missing}` };
  }
  return { name: `health ${name}`, ok: false, detail: said(answer) };
}

async function signedTest(url: string, name: string, secret: string): Promise<Check[]> {
  const id = `msg_verify_${crypto.randomUUID().replaceAll("-", "")}`;
  const timestamp = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({
    event: "test.webhook",
    source: "verify-deployment",
    timestamp: new Date().toISOString(),
  });
  const headers = {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
  };
  const signed = await request(`${url}/functions/v1/${name}`, {
    method: "POST",
    body,
    headers: { ...headers, "webhook-signature": await sign(secret, id, timestamp, body) },
  });
  const ok = signed.status === 200 && (signed.json as { ok?: boolean } | undefined)?.ok === true;
  const unsigned = await request(`${url}/functions/v1/${name}`, { method: "POST", body, headers });
  return [
    {
      name: `signed test ${name}`,
      ok,
      detail: ok
        ? `200 for ${id}`
        : signed.status === 401
        ? "401: the function does not accept WEBHOOK_SECRET (is it the secret set with " +
          "`supabase secrets set`?)"
        : said(signed),
    },
    {
      name: `rejects unsigned ${name}`,
      ok: unsigned.status === 401,
      detail: unsigned.status === 401 ? "401" : said(unsigned),
    },
  ];
}

async function rpc(url: string, key: string, name: string, args: Record<string, unknown> = {}) {
  return await request(`${url}/rest/v1/rpc/${name}`, {
    method: "POST",
    body: JSON.stringify(args),
    headers: { apikey: key, authorization: `Bearer ${key}`, "content-type": "application/json" },
  });
}

/** One check from a verify_* function's rows: fails on "missing", warns on "warning". */
async function verifyRows(
  url: string,
  key: string,
  name: string,
  label: string,
): Promise<Check> {
  const answer = await rpc(url, key, name);
  if (answer.status !== 200 || !Array.isArray(answer.json)) {
    return { name, ok: false, detail: said(answer) };
  }
  const rows = answer.json as Record<string, string>[];
  const named = (status: string) =>
    rows.filter((row) => row.status === status).map((row) => `${row[label]} (${row.details})`);
  const missing = named("missing");
  const warnings = named("warning");
  if (missing.length > 0) return { name, ok: false, detail: `missing: ${missing.join("; ")}` };
  if (warnings.length > 0) {
    return {
      name,
      ok: true,
      warning: true,
      detail: `${rows.length} ok or warning; warning: ${warnings.join("; ")}`,
    };
  }
  return { name, ok: true, detail: `${rows.length} of ${rows.length} ok` };
}

interface LogRow {
  webhook_id: string;
  status: string;
  response_status: number | null;
  error_message: string | null;
}

/** webhook_logs rows matching `filter`, newest first. */
async function logs(url: string, key: string, filter: string): Promise<LogRow[]> {
  const answer = await request(
    `${url}/rest/v1/webhook_logs?select=webhook_id,status,response_status,error_message` +
      `&${filter}&order=id.desc`,
    { headers: { apikey: key, authorization: `Bearer ${key}` } },
  );
  return Array.isArray(answer.json) ? answer.json as LogRow[] : [];
}

/** test_webhook() through pg_net to the function and back into webhook_logs. */
async function delivery(url: string, key: string, webhook: string): Promise<Check> {
  const name = `delivery ${webhook}`;
  const sent = await rpc(url, key, "test_webhook", { p_webhook_name: webhook });
  if (sent.status !== 200 || typeof sent.json !== "number") {
    return { name, ok: false, detail: `test_webhook: ${said(sent)}` };
  }
  const [first] = await logs(url, key, `id=eq.${sent.json}`);
  if (!first) return { name, ok: false, detail: `webhook_logs has no row ${sent.json}` };
  if (first.status === "skipped") {
    return { name, ok: false, detail: `skipped: ${first.error_message}` };
  }
  const deadline = Date.now() + DELIVERY_WAIT_MS;
  let last = first;
  while (Date.now() < deadline) {
    const attempts = await logs(url, key, `webhook_id=eq.${encodeURIComponent(first.webhook_id)}`);
    last = attempts[0] ?? last;
    if (last.status === "succeeded") {
      return { name, ok: true, detail: `${WEBHOOKS[webhook]} answered ${last.response_status}` };
    }
    if (last.status === "dead") {
      return { name, ok: false, detail: `dead: ${last.error_message ?? last.response_status}` };
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return {
    name,
    ok: false,
    detail: `not succeeded within ${DELIVERY_WAIT_MS / 1000} s (last attempt ${last.status}, ` +
      `HTTP ${last.response_status ?? "none"}: ${last.error_message ?? ""})`,
  };
}

const { url, serviceKey, secret } = environment();
const skipDelivery = Deno.args.includes("--skip-delivery");
console.log(`Verifying ${url}`);
const checks: Check[] = [];
const report = (check: Check) => {
  checks.push(check);
  const mark = !check.ok ? "FAIL" : check.warning ? "warn" : "ok  ";
  console.log(`${mark}  ${check.name.padEnd(32)} ${check.detail}`);
};
for (const name of FUNCTIONS) report(await health(url, name));
for (const name of FUNCTIONS) (await signedTest(url, name, secret)).forEach(report);
report(await verifyRows(url, serviceKey, "verify_extensions", "extension_name"));
report(await verifyRows(url, serviceKey, "verify_automation_setup", "component"));
if (!skipDelivery) {
  for (const webhook of Object.keys(WEBHOOKS)) report(await delivery(url, serviceKey, webhook));
}
const failed = checks.filter((check) => !check.ok).length;
console.log(
  failed === 0
    ? `All ${checks.length} checks passed.`
    : `${failed} of ${checks.length} checks failed.`,
);
Deno.exit(failed === 0 ? 0 : 1);
