// ai-processing end to end on the local stack with the OpenAI-compatible stand-in: rows inserted
// by SQL, the statement trigger's webhook delivered by the pg_net worker to the real shim and
// wasm, vectors written back through /rest/v1. The test has its own webhook, subscribed to the
// ai-processing events and pointing at its stack, so retries of other tests' deliveries (which
// follow the seeded webhooks) never reach it.
import assert from "node:assert/strict";
import {
  createUser,
  DB_URL,
  jsonOf,
  LOCAL_WEBHOOK_SECRET,
  type Server,
  signedPost,
  sql,
  startStack,
  until,
  waitFor,
} from "./support.ts";

const EMBEDDINGS = "/openai/v1/embeddings";

async function providerCalls(standIns: string): Promise<number> {
  const [, body] = await jsonOf(await fetch(`${standIns}/_stand-ins/requests`));
  return (body.requests as Record<string, number>)[EMBEDDINGS] ?? 0;
}

async function behave(standIns: string, behaviour: Record<string, unknown>) {
  const response = await fetch(`${standIns}/_stand-ins/openai/embeddings/behaviour`, {
    method: "POST",
    body: JSON.stringify(behaviour),
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

/** Inserts `count` memories of a new user in one statement; the SQL list of their ids. */
async function insertMemories(count: number, label: string): Promise<string> {
  const { id } = await createUser();
  const ids = await sql(
    `with m as (
       insert into memories (user_id, content, memory_type)
       select '${id}', format('%s %s: prefers trains and quiet ryokans', '${label}', n), 'trip_history'
       from generate_series(1, ${count}) n returning id)
     select string_agg(id::text, ',' order by id) from m`,
  );
  return ids;
}

/**
 * The line ai-processing logs when the background work it accepted ends: for the request whose
 * `request_id` (or delivery whose `webhook_id`) is `value`.
 */
async function backgroundLine(
  stack: Server,
  value: string,
  key: "request_id" | "webhook_id" = "request_id",
) {
  const find = () =>
    stack.output
      .filter((line) => line.startsWith("[ai-processing]") && line.includes('"background":'))
      .map((line) => JSON.parse(line.slice(line.indexOf("{"))))
      .find((log) => log[key] === value);
  await until(() => find() !== undefined, `the background line of ${key} ${value}`, 30);
  return find();
}

const embedded = (ids: string) =>
  `select count(*) from memories where id in (${ids}) and embedding is not null`;

Deno.test("ai-processing: memories and chat through the local stack", async (t) => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL, "--offline-apis"] });
  const standIns = stack.output.join("\n").match(/stand-ins on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
  assert.ok(standIns, "the stack prints the stand-ins' URL");
  const name = `ai_e2e_${Date.now()}`;
  const point = (url: string) =>
    sql(`update webhook_configs set url = '${url}/ai-processing' where name = '${name}'`);
  await sql(
    `insert into webhook_configs (name, url, secret, events, is_active)
     values ('${name}', '${stack.url}/ai-processing', '${LOCAL_WEBHOOK_SECRET}',
             array['memory.generate.embedding', 'chat.message.process'], true)`,
  );
  try {
    await t.step("500 memories in one statement: all embedded with one provider call", async () => {
      const before = await providerCalls(standIns);
      const ids = await insertMemories(500, "bulk");
      await waitFor(embedded(ids), "500", 60);
      assert.equal(await providerCalls(standIns) - before, 1, "ceil(500 / 2048)");
      const first = ids.split(",")[0];
      assert.equal(
        await sql(`select metadata ->> 'embedding_model' from memories where id = ${first}`),
        "text-embedding-3-small",
      );

      // The same delivery again, signed with its webhook-id and body: a duplicate.
      const [webhookId, body] = (await sql(
        `select webhook_id || '|' || payload::text from webhook_logs
         where webhook_name = '${name}' and payload -> 'memory_ids' @> '[${first}]'`,
      )).split(/\|(.*)/s);
      const calls = await providerCalls(standIns);
      const url = `${stack.url}/ai-processing`;
      const again = await signedPost(url, body, { id: webhookId, secret: LOCAL_WEBHOOK_SECRET });
      const [againStatus, againAnswer] = await jsonOf(again);
      assert.deepEqual([againStatus, againAnswer.duplicate], [200, true], "its receipt was kept");
      // The same body as another delivery: accepted, and nothing is left to embed.
      const resent = await signedPost(url, body, {
        id: `${webhookId}-again`,
        secret: LOCAL_WEBHOOK_SECRET,
      });
      const requestId = resent.headers.get("x-request-id");
      const [status, answer] = await jsonOf(resent);
      assert.equal(status, 202, "accepted at once, the work done after the answer");
      assert.equal(answer.background, "embeddings");
      const finished = await backgroundLine(stack, requestId!);
      assert.equal(finished.background, "done");
      assert.equal(finished.outcome.embedded, 0);
      assert.equal(await providerCalls(standIns), calls, "no call for embedded rows");
    });

    await t.step("two 429s with Retry-After: 1, then success: all embedded", async () => {
      await behave(standIns, { rate_limit_next: 2, retry_after_seconds: 1 });
      const ids = await insertMemories(5, "throttled");
      await waitFor(embedded(ids), "5", 60);
    });

    await t.step("1535 dimensions: nothing written, still pending, error logged", async () => {
      await behave(standIns, { dimensions: 1535 });
      const ids = await insertMemories(4, "short");
      const first = ids.split(",")[0];
      await waitFor(
        `select status || ' ' || response_status from webhook_logs
         where webhook_name = '${name}' and payload -> 'memory_ids' @> '[${first}]'`,
        "succeeded 202",
        30,
      );
      await until(
        () => /\[ai-processing\].*"background":"failed".*1535/.test(stack.output.join("\n")),
        "the background work logs that it gave up, and why",
      );
      assert.equal(await sql(embedded(ids)), "0");
      assert.equal(
        await sql(`select count_pending_memory_embeddings(array[${ids}])`),
        "4",
        "still pending, and released for the next delivery",
      );
      await behave(standIns, {});
      // The sweep, as pg_cron runs it every five minutes.
      await sql(`select enqueue_memory_embeddings()`);
      await waitFor(embedded(ids), "4", 60);
    });

    await t.step(
      "a user's message about a cheap hostel: preferences and a session memory",
      async () => {
        const user = await createUser();
        const message = await sql(
          `with s as (insert into chat_sessions (user_id) values ('${user.id}') returning id)
         insert into chat_messages (session_id, role, content)
         select id, 'user', 'Any tips for a cheap hostel in Lisbon?' from s returning id`,
        );
        await waitFor(
          `select count(*) from session_memories
         where source_message_id = ${message} and embedding is not null`,
          "1",
          30,
        );
        await waitFor(
          `select count(*) from memories
         where user_id = '${user.id}' and memory_type = 'user_preference'
           and metadata ->> 'preference' in ('budget travel', 'hostel')`,
          "2",
          30,
        );
      },
    );

    await t.step(
      "one statement of three messages: one delivery, the chat model for one, the log says so",
      async () => {
        const envFile = await Deno.makeTempFile({ suffix: ".env" });
        await Deno.writeTextFile(
          envFile,
          "CHAT_MODEL=gpt-4o-mini\nCHAT_MODEL_CALLS_PER_MINUTE=1\n",
        );
        const capped = await startStack({
          args: ["--db-url", DB_URL!, "--offline-apis", "--env-file", envFile],
        });
        try {
          await point(capped.url);
          const user = await createUser();
          const ids = await sql(
            `with s as (insert into chat_sessions (user_id) values ('${user.id}') returning id),
                  m as (insert into chat_messages (session_id, role, content)
                        select id, 'user', format('A cheap hostel, night %s', n)
                        from s, generate_series(1, 3) n returning id)
             select string_agg(id::text, ',' order by id) from m`,
          );
          const first = ids.split(",")[0];
          const delivered = `from webhook_logs where webhook_name = '${name}'
            and payload -> 'message_ids' @> '[${first}]' and status = 'succeeded'`;
          await waitFor(
            `select response_status || ' ' || (response_body::jsonb ->> 'background') ${delivered}`,
            "202 chat",
            30,
          );
          const finished = await backgroundLine(
            capped,
            await sql(`select webhook_id ${delivered}`),
            "webhook_id",
          );
          assert.deepEqual(
            [
              finished.background,
              finished.outcome.extracted_by,
              finished.outcome.chat_model_capped,
            ],
            ["done", { chat_model: 1, rules: 2 }, { messages: 2, calls_per_user_per_minute: 1 }],
            "the line logged when the work ends says the cap was reached",
          );
          assert.equal(
            await sql(
              `select count(*) from webhook_logs where webhook_name = '${name}'
               and event_type = 'chat.message.process' and payload -> 'message_ids' @> '[${first}]'`,
            ),
            "1",
            "one delivery for the statement",
          );
          assert.equal(
            await sql(
              `select string_agg(metadata ->> 'extracted_by', ' ' order by source_message_id)
               from session_memories where source_message_id in (${ids}) and embedding is not null`,
            ),
            "chat_model rules rules",
          );
        } finally {
          await point(stack.url);
          await capped.stop();
          await Deno.remove(envFile);
        }
      },
    );

    await t.step("without an OpenAI key: 503 not_configured and nothing changed", async () => {
      const keyless = await startStack({ args: ["--db-url", DB_URL!] });
      try {
        await point(keyless.url);
        const ids = await insertMemories(3, "keyless");
        const first = ids.split(",")[0];
        await waitFor(
          `select response_status || ' ' || (response_body::jsonb #>> '{error,code}')
           from webhook_logs
           where webhook_name = '${name}' and payload -> 'memory_ids' @> '[${first}]'
           order by attempt_count limit 1`,
          "503 not_configured",
          30,
        );
        assert.equal(
          await sql(
            `select count(*) from memories where id in (${ids})
             and embedding is null and embedding_lease_id is null and updated_at = created_at`,
          ),
          "3",
        );
      } finally {
        await point(stack.url);
        await keyless.stop();
      }
    });
  } finally {
    await sql(`delete from webhook_configs where name = '${name}'`);
    await stack.stop();
  }
});
