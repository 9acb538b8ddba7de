// Malformed, truncated, huge and wrongly typed bodies and headers, sent to both functions through
// the local stack (gateway, real shims and wasm, /rest/v1 over the test database, offline API
// stand-ins). Each gets the documented 4xx with an error body, never a 5xx, and the functions
// stay up: nothing panics and nothing is written.
import assert from "node:assert/strict";
import {
  DB_URL,
  jsonOf,
  LOCAL_WEBHOOK_SECRET,
  SECRET,
  signedPost,
  sql,
  standardHeaders,
  startStack,
} from "./support.ts";

const ADA = "0b9a7c1e-5d7b-4f4e-9a51-0d1c2b3a4f50";

interface Case {
  name: string;
  status: number;
  /** The error code, or a field the 400 must name. */
  code?: string;
  field?: string;
  /** Answered by the gateway, which has no error body of ours. */
  gateway?: boolean;
  send: (url: string) => Promise<Response>;
}

/** A POST signed with the functions' secret; `headers` override the signed ones. */
function signed(body: string, headers: Record<string, string> = {}) {
  return (url: string) =>
    fetch(url, {
      method: "POST",
      body,
      headers: standardHeaders(body, { secret: LOCAL_WEBHOOK_SECRET, headers }),
    });
}

function event(payload: Record<string, unknown>) {
  return signed(JSON.stringify(payload));
}

const MIB = 1024 * 1024;

/** What both functions must refuse the same way. */
function commonCases(): Case[] {
  const big = JSON.stringify({ event: "test.webhook", padding: "x".repeat(2 * MIB) });
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  return [
    { name: "not JSON", status: 400, code: "invalid_json", send: signed("hello, world") },
    {
      name: "truncated JSON",
      status: 400,
      code: "invalid_json",
      send: signed('{"event":"test.webhook","memory_ids":[1,2'),
    },
    { name: "empty body", status: 400, code: "invalid_json", send: signed("") },
    { name: "a JSON array", status: 400, code: "invalid_json", send: signed("[1,2,3]") },
    { name: "a JSON string", status: 400, code: "invalid_json", send: signed('"test.webhook"') },
    { name: "100,000 nested arrays", status: 400, code: "invalid_json", send: signed(deep) },
    {
      name: "bytes that are not UTF-8",
      status: 400,
      code: "invalid_json",
      send: async (url) => {
        const body = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]);
        const headers = { "content-type": "application/json", ...await signBytes(body) };
        return fetch(url, { method: "POST", body, headers });
      },
    },
    { name: "no event", status: 400, field: "event", send: event({ trip_id: 1 }) },
    { name: "a numeric event", status: 400, field: "event", send: event({ event: 42 }) },
    { name: "an empty event", status: 400, field: "event", send: event({ event: "  " }) },
    {
      name: "the header naming another event",
      status: 400,
      field: "event",
      send: signed(JSON.stringify({ event: "test.webhook" }), { "x-webhook-event": "other.event" }),
    },
    {
      name: "an attempt that is not a number",
      status: 400,
      field: "X-Webhook-Attempt",
      send: signed(JSON.stringify({ event: "test.webhook" }), { "x-webhook-attempt": "soon" }),
    },
    {
      name: "an unknown event",
      status: 422,
      code: "unsupported_event",
      send: event({ event: "trip.archived" }),
    },
    { name: "a signed 2 MiB body", status: 413, code: "payload_too_large", send: signed(big) },
    {
      name: "a 2 MiB body streamed without Content-Length",
      status: 413,
      code: "payload_too_large",
      send: (url) => {
        const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent >= 2 * MIB) return controller.close();
            sent += chunk.length;
            controller.enqueue(chunk);
          },
        });
        return fetch(url, { method: "POST", body, headers: standardHeaders("x") });
      },
    },
    {
      name: "no signature",
      status: 401,
      send: (url) => fetch(url, { method: "POST", body: '{"event":"test.webhook"}' }),
    },
    {
      name: "a garbage signature",
      status: 401,
      send: signed('{"event":"test.webhook"}', { "webhook-signature": "v1,???? v2 ,, v1," }),
    },
    {
      name: "a signature under another secret",
      status: 401,
      code: "invalid_signature",
      send: (url) => signedPost(url, '{"event":"test.webhook"}', { secret: SECRET }),
    },
    {
      name: "a 12 KB signature header",
      status: 401,
      send: signed('{"event":"test.webhook"}', {
        "webhook-signature": "v1,AAAA ".repeat(1536),
      }),
    },
    {
      name: "a 64 KB header, refused by the gateway before any function",
      status: 431,
      gateway: true,
      send: signed('{"event":"test.webhook"}', { "x-padding": "x".repeat(64 * 1024) }),
    },
    {
      name: "a timestamp that is not a number",
      status: 401,
      code: "invalid_signature_header",
      send: signed('{"event":"test.webhook"}', { "webhook-timestamp": "yesterday" }),
    },
    {
      name: "a timestamp beyond 64 bits",
      status: 401,
      code: "invalid_signature_header",
      send: signed('{"event":"test.webhook"}', {
        "webhook-timestamp": "99999999999999999999999999",
      }),
    },
    {
      name: "an hour-old delivery",
      status: 401,
      code: "timestamp_too_old",
      send: (url) =>
        fetch(url, {
          method: "POST",
          body: '{"event":"test.webhook"}',
          headers: standardHeaders('{"event":"test.webhook"}', {
            secret: LOCAL_WEBHOOK_SECRET,
            timestamp: new Date(Date.now() - 3600_000),
          }),
        }),
    },
    {
      name: "a webhook-id with a dot",
      status: 401,
      code: "invalid_signature_header",
      send: (url) =>
        fetch(url, {
          method: "POST",
          body: '{"event":"test.webhook"}',
          headers: standardHeaders('{"event":"test.webhook"}', {
            secret: LOCAL_WEBHOOK_SECRET,
            id: "msg.1",
          }),
        }),
    },
    {
      name: "a body other than the one signed",
      status: 401,
      code: "invalid_signature",
      send: (url) =>
        fetch(url, {
          method: "POST",
          body: '{"event":"test.webhook","x":1}',
          headers: standardHeaders('{"event":"test.webhook"}', { secret: LOCAL_WEBHOOK_SECRET }),
        }),
    },
    {
      name: "PUT",
      status: 405,
      code: "method_not_allowed",
      send: (url) => fetch(url, { method: "PUT", body: "{}" }),
    },
  ];
}

/** Standard Webhooks headers over raw bytes, with WebCrypto: the reference library signs text. */
async function signBytes(body: Uint8Array): Promise<Record<string, string>> {
  const id = `msg_${crypto.randomUUID()}`;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const secret = Uint8Array.from(
    atob(LOCAL_WEBHOOK_SECRET.slice("whsec_".length)),
    (c) => c.charCodeAt(0),
  );
  const key = await crypto.subtle.importKey(
    "raw",
    secret,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const message = new Uint8Array(prefix.length + body.length);
  message.set(prefix);
  message.set(body, prefix.length);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
  return {
    "webhook-id": id,
    "webhook-timestamp": timestamp,
    "webhook-signature": `v1,${btoa(String.fromCharCode(...mac))}`,
  };
}

function tripEventsCases(trip: number): Case[] {
  const collaborator = { trip_id: trip, user_id: ADA, added_by: ADA, permission_level: "view" };
  const calendar = {
    user_id: ADA,
    trip_id: trip,
    trip_name: "Fuzz",
    destination: "Porto",
    start_date: "2027-06-01",
    end_date: "2027-06-07",
    items: [],
  };
  const added = (change: Record<string, unknown>) =>
    event({ event: "trip.collaborator.added", ...collaborator, ...change });
  const sync = (change: Record<string, unknown>) =>
    event({ event: "calendar.sync.request", ...calendar, ...change });
  return [
    { name: "trip_id as a string", status: 400, field: "trip_id", send: added({ trip_id: "7" }) },
    { name: "trip_id as a float", status: 400, field: "trip_id", send: added({ trip_id: 7.5 }) },
    {
      name: "trip_id beyond 64 bits",
      status: 400,
      field: "trip_id",
      send: added({ trip_id: 1e20 }),
    },
    { name: "user_id as a number", status: 400, field: "user_id", send: added({ user_id: 42 }) },
    { name: "user_id not a UUID", status: 400, field: "user_id", send: added({ user_id: "ada" }) },
    { name: "added_by missing", status: 400, field: "added_by", send: added({ added_by: null }) },
    {
      name: "permission_level as an object",
      status: 400,
      field: "permission_level",
      send: added({ permission_level: { level: "edit" } }),
    },
    {
      name: "a booking of another kind",
      status: 400,
      field: "booking_type",
      send: event({
        event: "booking.flights.cancelled",
        trip_id: trip,
        booking_type: "cars",
        booking_id: 1,
        new_status: "cancelled",
      }),
    },
    { name: "items as a string", status: 400, field: "items", send: sync({ items: "all" }) },
    {
      name: "an item that is a number",
      status: 400,
      field: "items[0]",
      send: sync({ items: [1] }),
    },
    {
      name: "an item without a title",
      status: 400,
      field: "items[0].title",
      send: sync({ items: [{ id: 1, item_type: "x", updated_at: "2027-01-01T00:00:00Z" }] }),
    },
    {
      name: "a date that does not exist",
      status: 400,
      field: "start_date",
      send: sync({ start_date: "2027-02-30" }),
    },
    {
      name: "an item time with a bad offset",
      status: 400,
      send: sync({
        items: [{
          id: 1,
          title: "Tram",
          item_type: "transport",
          start_time: "2027-06-02T25:61:00+99:00",
          updated_at: "2027-01-01T00:00:00Z",
        }],
      }),
    },
  ];
}

function aiProcessingCases(): Case[] {
  const chat = {
    event: "chat.message.process",
    message_id: 1,
    session_id: ADA,
    user_id: ADA,
    role: "user",
    content: "I love quiet beaches",
  };
  const message = (change: Record<string, unknown>) => event({ ...chat, ...change });
  const embed = (memoryIds: unknown) =>
    event({ event: "memory.generate.embedding", memory_ids: memoryIds });
  return [
    { name: "memory_ids as a string", status: 400, field: "memory_ids", send: embed("all") },
    { name: "a zero memory id", status: 400, field: "memory_ids", send: embed([0]) },
    { name: "a fractional memory id", status: 400, field: "memory_ids", send: embed([1.5]) },
    { name: "memory ids as strings", status: 400, field: "memory_ids", send: embed(["1"]) },
    {
      name: "message_id as a string",
      status: 400,
      field: "message_id",
      send: message({ message_id: "1" }),
    },
    {
      name: "a negative message_id",
      status: 400,
      field: "message_id",
      send: message({ message_id: -1 }),
    },
    {
      name: "user_id not a UUID",
      status: 400,
      field: "user_id",
      send: message({ user_id: "ada" }),
    },
    {
      name: "session_id as a number",
      status: 400,
      field: "session_id",
      send: message({ session_id: 5 }),
    },
    {
      name: "content as an array",
      status: 400,
      field: "content",
      send: message({ content: ["hi"] }),
    },
    { name: "no role", status: 400, field: "role", send: message({ role: null }) },
  ];
}

Deno.test("both functions answer malformed requests with the documented 4xx", async (t) => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL, "--offline-apis"] });
  try {
    const owner = await sql(
      `insert into auth.users (id, email, role, aud)
       values (gen_random_uuid(), gen_random_uuid() || '@example.com', 'authenticated',
               'authenticated') returning id`,
    );
    const trip = Number(
      await sql(
        `insert into trips (user_id, name, destination, start_date, end_date)
         values ('${owner}', 'Fuzz', 'Porto', '2027-06-01', '2027-06-07') returning id`,
      ),
    );
    const written = () =>
      sql(`select (select count(*) from notifications where user_id in ('${owner}', '${ADA}'))
                  + (select count(*) from session_memories where user_id = '${ADA}')`);
    const suites: [string, Case[]][] = [
      ["trip-events", [...commonCases(), ...tripEventsCases(trip)]],
      ["ai-processing", [...commonCases(), ...aiProcessingCases()]],
    ];
    for (const [name, cases] of suites) {
      const url = `${stack.url}/${name}`;
      for (const item of cases) {
        await t.step(`${name}: ${item.name} → ${item.status}`, async () => {
          const response = await item.send(url);
          const [status, body] = await jsonOf(response);
          assert.equal(status, item.status, JSON.stringify(body));
          if (item.gateway) return;
          const error = body.error as Record<string, string>;
          assert.ok(error?.code && error.message, JSON.stringify(body));
          if (item.code) assert.equal(error.code, item.code);
          if (item.field) assert.equal(error.field, item.field);
        });
      }
      await t.step(`${name}: still healthy afterwards`, async () => {
        const [status, body] = await jsonOf(await fetch(`${url}/health`));
        assert.equal(status, 200);
        assert.equal(body.function, name);
      });
    }
    await t.step("nothing was written and nothing panicked", async () => {
      assert.equal(await written(), "0");
      const log = stack.output.join("\n");
      assert.doesNotMatch(log, /panicked|RuntimeError|unreachable|"status":5\d\d/);
    });
  } finally {
    await stack.stop();
  }
});
