// trip-events end to end on the local stack (with --offline-apis for e-mail): a trip owner adds a
// collaborator through /rest/v1 with supabase-js, the database's trigger sends the signed webhook,
// the pg_net worker delivers it to the real shim and wasm, and the function writes the
// notification through /rest/v1 and sends the e-mail to the Resend stand-in.
import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import {
  ANON_KEY,
  createUser,
  DB_URL,
  jsonOf,
  LOCAL_WEBHOOK_SECRET,
  signedPost,
  sql,
  startStack,
  waitFor,
} from "./support.ts";

function client(api: string, token: string): SupabaseClient {
  return createClient(api, ANON_KEY, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });
}

interface SentEmail {
  id: string;
  idempotency_key: string;
  email: { to: string[]; subject: string };
}

async function emailsTo(standIns: string, userId: string): Promise<SentEmail[]> {
  const email = await sql(`select email from auth.users where id = '${userId}'`);
  const [, inbox] = await jsonOf(await fetch(`${standIns}/_stand-ins/emails`));
  return (inbox.emails as SentEmail[]).filter((sent) => sent.email.to.includes(email));
}

Deno.test("trip-events: adding a collaborator notifies them once and e-mails them once", async (t) => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL, "--offline-apis"] });
  const port = new URL(stack.api).port;
  const standIns = stack.output.join("\n").match(/stand-ins on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
  assert.ok(standIns, "the stack prints the stand-ins' URL");
  await sql(
    `update webhook_configs set url = replace(url, '127.0.0.1:54321', '127.0.0.1:${port}')`,
  );
  try {
    const owner = await createUser();
    const friend = await createUser();
    const stranger = await createUser();
    const db = client(stack.api, owner.token);
    const { data: trip, error } = await db.from("trips").insert({
      user_id: owner.id,
      name: "Azulejos",
      destination: "Lisbon, Portugal",
      start_date: "2027-06-01",
      end_date: "2027-06-07",
    }).select().single();
    assert.equal(error, null);

    const invitesOf = async (token: string, userId: string) => {
      const { data } = await client(stack.api, token).from("notifications")
        .select("type, message, metadata").eq("user_id", userId);
      return data ?? [];
    };

    await t.step("the collaborator sees exactly one invitation; a stranger sees none", async () => {
      const added = await db.from("trip_collaborators").insert({
        trip_id: trip.id,
        user_id: friend.id,
        added_by: owner.id,
        permission_level: "edit",
      });
      assert.equal(added.status, 201);
      await waitFor(
        `select count(*) from notifications where user_id = '${friend.id}'`,
        "1",
        30,
      );
      const invites = await invitesOf(friend.token, friend.id);
      assert.equal(invites.length, 1);
      assert.equal(invites[0].type, "trip_collaboration_invite");
      assert.match(invites[0].message, /"Azulejos" \(Lisbon, Portugal\) with edit access/);
      assert.deepEqual(await invitesOf(stranger.token, friend.id), [], "RLS hides them");
      const emails = await emailsTo(standIns, friend.id);
      assert.equal(emails.length, 1);
      const webhookId = await sql(
        `select webhook_id from webhook_logs
         where event_type = 'trip.collaborator.added' and payload ->> 'user_id' = '${friend.id}'`,
      );
      assert.equal(emails[0].idempotency_key, `trip-invite/${webhookId}/${friend.id}`);
    });

    await t.step("the same delivery again changes nothing", async () => {
      const [webhookId, body] = (await sql(
        `select webhook_id || '|' || payload::text from webhook_logs
         where event_type = 'trip.collaborator.added' and payload ->> 'user_id' = '${friend.id}'`,
      )).split(/\|(.*)/s);
      const [status, answer] = await jsonOf(
        await signedPost(`${stack.url}/trip-events`, body, {
          id: webhookId,
          secret: LOCAL_WEBHOOK_SECRET,
          headers: { "x-webhook-event": "trip.collaborator.added" },
        }),
      );
      assert.equal(status, 200);
      assert.equal(answer.duplicate, true);
      assert.equal((await invitesOf(friend.token, friend.id)).length, 1);
      assert.equal((await emailsTo(standIns, friend.id)).length, 1);
    });

    await t.step(
      "an e-mail provider failing twice: retried, one notification, one e-mail",
      async () => {
        const second = await createUser();
        // Only this collaborator's e-mails fail: retries of other tests' deliveries may also
        // reach this stack and send e-mails.
        const address = await sql(`select email from auth.users where id = '${second.id}'`);
        const failing = await fetch(`${standIns}/_stand-ins/emails/fail-next`, {
          method: "POST",
          body: JSON.stringify({ count: 2, to: address }),
        });
        assert.equal(failing.status, 200);
        await failing.body?.cancel();
        await db.from("trip_collaborators").insert({
          trip_id: trip.id,
          user_id: second.id,
          added_by: owner.id,
        });
        await waitFor(
          `select string_agg(status || ':' || coalesce(response_status::text, '-'), ' ' order by attempt_count)
         from webhook_logs
         where event_type = 'trip.collaborator.added' and payload ->> 'user_id' = '${second.id}'`,
          "retried:502 retried:502 succeeded:200",
          60,
        );
        assert.equal((await invitesOf(second.token, second.id)).length, 1);
        assert.equal((await emailsTo(standIns, second.id)).length, 1);
      },
    );
  } finally {
    await sql(
      `update webhook_configs set url = replace(url, '127.0.0.1:${port}', '127.0.0.1:54321')`,
    );
    await stack.stop();
  }
});
