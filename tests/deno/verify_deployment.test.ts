// scripts/verify-deployment against the local stack: every check passes on a working deployment,
// each failure is reported by name (wrong webhook secret, nothing listening, missing settings),
// and no secret is ever printed.
import assert from "node:assert/strict";
import {
  DB_URL,
  freePort,
  LOCAL_WEBHOOK_SECRET,
  ROOT,
  SECRET,
  SERVICE_ROLE_KEY,
  sql,
  startStack,
} from "./support.ts";

async function verify(env: Record<string, string>, ...args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(`${ROOT}scripts/verify-deployment`, {
    args,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp", ...env },
    clearEnv: true,
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout), err: text.decode(stderr) };
}

/** The report's line for a check, e.g. `ok    health trip-events   healthy, …`. */
function line(out: string, check: string) {
  return out.split("\n").find((l) => l.slice(6).startsWith(`${check} `)) ?? `(no ${check} line)`;
}

function assertNoSecrets(text: string) {
  for (const secret of [SERVICE_ROLE_KEY, LOCAL_WEBHOOK_SECRET, SECRET]) {
    assert.ok(!text.includes(secret), "the report never prints a key or secret");
    assert.ok(!text.includes(secret.slice(-20)), "not even part of one");
  }
}

/** Points both webhooks of the seed at `stack`; returns the undo. */
async function aimWebhooks(stack: { api: string }) {
  const port = new URL(stack.api).port;
  const aim = (from: string, to: string) =>
    sql(`update webhook_configs set url = replace(url, '127.0.0.1:${from}', '127.0.0.1:${to}')
         where name in ('trip_events', 'ai_processing')`);
  await aim("54321", port);
  return () => aim(port, "54321");
}

Deno.test("verify-deployment: every check passes on the local stack, through the database and back", async () => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL, "--offline-apis"] });
  const restore = await aimWebhooks(stack);
  try {
    const { code, out, err } = await verify({
      SUPABASE_URL: stack.api,
      SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_KEY,
      WEBHOOK_SECRET: LOCAL_WEBHOOK_SECRET,
    });
    assert.equal(code, 0, `${out}\n${err}`);
    for (const name of ["trip-events", "ai-processing"]) {
      assert.match(line(out, `health ${name}`), /^ok +health \S+ +healthy, version \d/);
      assert.match(line(out, `signed test ${name}`), /^ok +signed test \S+ +200 for msg_verify_/);
      assert.match(line(out, `rejects unsigned ${name}`), /^ok +rejects unsigned \S+ +401$/);
    }
    assert.match(line(out, "verify_extensions"), /^ok +verify_extensions +(\d+) of \1 ok$/);
    assert.match(
      line(out, "verify_automation_setup"),
      /^ok +verify_automation_setup +(\d+) of \1 ok$/,
    );
    assert.match(
      line(out, "delivery trip_events"),
      /^ok +delivery trip_events +trip-events answered 200$/,
    );
    assert.match(
      line(out, "delivery ai_processing"),
      /^ok +delivery ai_processing +ai-processing answered 200$/,
    );
    assert.match(out, /All 10 checks passed\./);
    assertNoSecrets(out + err);
  } finally {
    await restore();
    await stack.stop();
  }
});

Deno.test("verify-deployment: a wrong secret, missing settings and a missing webhook are each reported", async () => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  // Without --offline-apis ai-processing has no OPENAI_API_KEY: degraded.
  const stack = await startStack({ args: ["--db-url", DB_URL] });
  const restore = await aimWebhooks(stack);
  await sql(`update webhook_configs set is_active = false where name = 'ai_processing'`);
  try {
    const { code, out, err } = await verify({
      SUPABASE_URL: `${stack.api}/`,
      SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_KEY,
      WEBHOOK_SECRET: SECRET,
    });
    assert.equal(code, 1, `${out}\n${err}`);
    assert.match(line(out, "health trip-events"), /^ok /);
    assert.match(
      line(out, "health ai-processing"),
      /^FAIL +health ai-processing +degraded: missing OPENAI_API_KEY/,
    );
    for (const name of ["trip-events", "ai-processing"]) {
      assert.match(
        line(out, `signed test ${name}`),
        /^FAIL +signed test \S+ +401: the function does not accept WEBHOOK_SECRET/,
      );
      assert.match(line(out, `rejects unsigned ${name}`), /^ok /);
    }
    // The database signs with its own secret, which the functions accept.
    assert.match(line(out, "delivery trip_events"), /^ok /);
    assert.match(line(out, "delivery ai_processing"), /^FAIL +delivery ai_processing +skipped: /);
    assertNoSecrets(out + err);
  } finally {
    await sql(`update webhook_configs set is_active = true where name = 'ai_processing'`);
    await restore();
    await stack.stop();
  }
});

Deno.test("verify-deployment: nothing listening fails every check; missing or malformed variables are named", async () => {
  const nothing = await verify({
    SUPABASE_URL: `http://127.0.0.1:${freePort()}`,
    SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_KEY,
    WEBHOOK_SECRET: LOCAL_WEBHOOK_SECRET,
  }, "--skip-delivery");
  assert.equal(nothing.code, 1);
  const lines = nothing.out.split("\n").filter((l) => /^(ok|FAIL|warn) /.test(l));
  assert.equal(lines.length, 8, nothing.out);
  for (const l of lines) assert.match(l, /^FAIL .*not reachable/);
  assert.match(nothing.out, /8 of 8 checks failed\./);
  assertNoSecrets(nothing.out + nothing.err);

  const unset = await verify({ SUPABASE_URL: "https://example.supabase.co" });
  assert.equal(unset.code, 2);
  assert.match(unset.err, /set SUPABASE_SERVICE_ROLE_KEY, WEBHOOK_SECRET/);

  const malformed = await verify({
    SUPABASE_URL: "https://example.supabase.co",
    SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_KEY,
    WEBHOOK_SECRET: "not-a-webhook-secret",
  });
  assert.equal(malformed.code, 2);
  assert.match(malformed.err, /WEBHOOK_SECRET must be whsec_/);
  assert.ok(!malformed.err.includes("not-a-webhook-secret"), "the value is not printed");
});
