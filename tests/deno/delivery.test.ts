// The whole loop on the throwaway test database (TRIPSAGE_TEST_DB_URL, set by ./scripts/test):
// a SQL statement queues a signed webhook, the local stack's pg_net worker delivers it through the
// gateway to the real shim, and the retry collector records the function's answer.
import assert from "node:assert/strict";
import { DB_URL, SECRET, sql, startStack, waitFor } from "./support.ts";

Deno.test("delivery: test_webhook travels from SQL to each function and back into webhook_logs", async (t) => {
  assert.ok(
    DB_URL,
    "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test (or scripts/db start and set it to $(scripts/db url))",
  );
  const stack = await startStack({ args: ["--db-url", DB_URL] });
  const port = new URL(stack.api).port;
  // The seed points the webhooks at the default port; this stack listens elsewhere.
  try {
    await sql(
      `update webhook_configs set url = replace(url, '127.0.0.1:54321', '127.0.0.1:${port}')`,
    );
    for (const name of ["trip_events", "ai_processing"]) {
      await t.step(
        `${name}: the logged attempt becomes succeeded with the function's 200`,
        async () => {
          const log = await sql(`select test_webhook('${name}')`);
          await waitFor(
            `select status || ' ' || response_status || ' ' || (response_body::jsonb ->> 'event')
             from webhook_logs where id = ${log}`,
            "succeeded 200 test.webhook",
            30,
          );
          const functionName = name.replace("_", "-");
          assert.match(
            stack.output.join("\n"),
            new RegExp(`\\[${functionName}\\].*"event":"test.webhook".*"status":200`),
          );
        },
      );
    }
  } finally {
    await sql(
      `update webhook_configs set url = replace(url, '127.0.0.1:${port}', '127.0.0.1:54321')`,
    );
    await stack.stop();
  }
});

Deno.test("delivery: a function answering 503 is retried with the same webhook-id until it succeeds", async () => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  // A project whose only function fails twice with 503 + Retry-After, then succeeds, and says
  // which webhook-ids and attempts it saw.
  const project = await Deno.makeTempDir();
  await Deno.mkdir(`${project}/supabase/functions/flaky`, { recursive: true });
  await Deno.writeTextFile(
    `${project}/supabase/config.toml`,
    `[functions.flaky]\nverify_jwt = false\n`,
  );
  await Deno.writeTextFile(
    `${project}/supabase/functions/flaky/index.ts`,
    `const seen: string[] = [];
Deno.serve({ hostname: "127.0.0.1", port: Number(Deno.env.get("PORT")) }, async (request) => {
  if (new URL(request.url).pathname.endsWith("/health")) return new Response("ok");
  await request.text();
  seen.push(request.headers.get("webhook-id") + " " + request.headers.get("x-webhook-attempt"));
  if (seen.length <= 2) {
    return new Response("busy", { status: 503, headers: { "retry-after": "1" } });
  }
  return Response.json({ seen });
});
`,
  );
  const stack = await startStack({
    project,
    functions: ["flaky"],
    args: ["--db-url", DB_URL],
  });
  const name = `flaky_${Date.now()}`;
  try {
    await sql(
      `insert into webhook_configs (name, url, secret, events, is_active, retry_config)
       values ('${name}', '${stack.url}/flaky', '${SECRET}', array['test.webhook'], true,
               '{"max_retries": 3, "retry_delay": 200, "backoff_multiplier": 2, "max_delay": 2000}')`,
    );
    const first = await sql(`select test_webhook('${name}')`);
    const webhookId = await sql(`select webhook_id from webhook_logs where id = ${first}`);
    await waitFor(
      `select string_agg(attempt_count || ':' || status || ':' || response_status, ' '
                         order by attempt_count)
       from webhook_logs where webhook_id = '${webhookId}'`,
      "1:retried:503 2:retried:503 3:succeeded:200",
      60,
    );
    const body = await sql(
      `select response_body from webhook_logs
       where webhook_id = '${webhookId}' and status = 'succeeded'`,
    );
    assert.deepEqual(JSON.parse(body).seen, [
      `${webhookId} 1`,
      `${webhookId} 2`,
      `${webhookId} 3`,
    ]);
  } finally {
    await sql(`delete from webhook_configs where name = '${name}'`);
    await stack.stop();
  }
});
