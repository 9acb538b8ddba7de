// The whole loop on the throwaway test database (TRIPSAGE_TEST_DB_URL, set by ./scripts/test):
// a SQL statement queues a signed webhook, the local stack's pg_net worker delivers it through the
// gateway to the real shim, and the retry collector records the function's answer.
import assert from "node:assert/strict";
import { DB_URL, sql, startStack, waitFor } from "./support.ts";

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
