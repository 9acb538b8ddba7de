// The HTTP contract over real HTTP: each function's real shim, loaded with its built wasm, in Deno.
// Deliveries are signed by the Standard Webhooks reference library.
import assert from "node:assert/strict";
import { decodeBase64, encodeHex } from "./encoding.ts";
import {
  FUNCTIONS,
  jsonOf,
  SECRET,
  signedPost,
  standardHeaders,
  startFunction,
} from "./support.ts";

const CONFIGURED = {
  WEBHOOK_SECRET: SECRET,
  SUPABASE_URL: "http://127.0.0.1:9",
  SUPABASE_SERVICE_ROLE_KEY: "service-role-key-for-contract-tests",
  OPENAI_API_KEY: "sk-contract-tests-key",
};

const TEST_EVENT = JSON.stringify({ event: "test.webhook" });

for (const name of FUNCTIONS) {
  Deno.test(`${name}: the HTTP contract`, async (t) => {
    const fn = await startFunction(name, CONFIGURED);
    try {
      await t.step("OPTIONS answers 204 with CORS headers", async () => {
        const response = await fetch(fn.url, { method: "OPTIONS" });
        assert.equal(response.status, 204);
        assert.equal(await response.text(), "");
        assert.equal(response.headers.get("access-control-allow-origin"), "*");
        assert.match(
          response.headers.get("access-control-allow-headers") ?? "",
          /webhook-signature/,
        );
      });

      await t.step("GET /health is healthy with everything configured", async () => {
        const [status, body] = await jsonOf(await fetch(`${fn.url}/health`));
        assert.equal(status, 200);
        assert.equal(body.status, "healthy");
        assert.equal(body.function, name);
        assert.equal(typeof body.version, "string");
        assert.deepEqual(body.missing, []);
      });

      await t.step("other methods get 405 with Allow", async () => {
        const put = await fetch(fn.url, { method: "PUT", body: "{}" });
        assert.equal(put.status, 405);
        assert.equal(put.headers.get("allow"), "POST, OPTIONS");
        const [, body] = await jsonOf(put);
        assert.equal((body.error as Record<string, string>).code, "method_not_allowed");
        const postHealth = await fetch(`${fn.url}/health`, { method: "POST" });
        await postHealth.body?.cancel();
        assert.equal(postHealth.status, 405);
        assert.equal(postHealth.headers.get("allow"), "GET, OPTIONS");
      });

      await t.step("a signed test.webhook is accepted", async () => {
        const [status, body] = await jsonOf(
          await signedPost(fn.url, TEST_EVENT, { id: "msg_contract_ok" }),
        );
        assert.equal(status, 200);
        assert.deepEqual(body, {
          ok: true,
          event: "test.webhook",
          webhook_id: "msg_contract_ok",
          function: name,
        });
      });

      await t.step("the same request with one byte of the body changed gets 401", async () => {
        const headers = standardHeaders(TEST_EVENT, { id: "msg_contract_tampered" });
        const good = await fetch(fn.url, { method: "POST", body: TEST_EVENT, headers });
        await good.body?.cancel();
        assert.equal(good.status, 200);
        const tampered = TEST_EVENT.replace("test", "tesT");
        const [status, body] = await jsonOf(
          await fetch(fn.url, { method: "POST", body: tampered, headers }),
        );
        assert.equal(status, 401);
        assert.equal((body.error as Record<string, string>).code, "invalid_signature");
      });

      await t.step("a timestamp 10 minutes old gets 401", async () => {
        const old = new Date(Date.now() - 10 * 60 * 1000);
        const [status, body] = await jsonOf(
          await signedPost(fn.url, TEST_EVENT, { timestamp: old }),
        );
        assert.equal(status, 401);
        assert.equal((body.error as Record<string, string>).code, "timestamp_too_old");
      });

      await t.step("a timestamp 10 minutes ahead gets 401", async () => {
        const ahead = new Date(Date.now() + 10 * 60 * 1000);
        const [status, body] = await jsonOf(
          await signedPost(fn.url, TEST_EVENT, { timestamp: ahead }),
        );
        assert.equal(status, 401);
        assert.equal((body.error as Record<string, string>).code, "timestamp_in_future");
      });

      await t.step("a wrong secret or no signature gets 401", async () => {
        const other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        const [status] = await jsonOf(await signedPost(fn.url, TEST_EVENT, { secret: other }));
        assert.equal(status, 401);
        const [unsigned, body] = await jsonOf(
          await fetch(fn.url, { method: "POST", body: TEST_EVENT }),
        );
        assert.equal(unsigned, 401);
        assert.equal((body.error as Record<string, string>).code, "missing_signature_header");
        assert.match((body.error as Record<string, string>).message, /webhook-signature/);
      });

      await t.step("the legacy signature is refused unless allowed", async () => {
        const [status, body] = await jsonOf(await legacyPost(fn.url, SECRET, TEST_EVENT));
        assert.equal(status, 401);
        assert.equal((body.error as Record<string, string>).code, "legacy_signature_not_allowed");
      });

      await t.step("bodies over 1 MiB get 413, declared or streamed", async () => {
        const big = "x".repeat(1024 * 1024 + 1);
        const declared = await signedPost(fn.url, big);
        await declared.body?.cancel();
        assert.equal(declared.status, 413);
        const chunk = new TextEncoder().encode("y".repeat(64 * 1024));
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent > 2 * 1024 * 1024) return controller.close();
            sent += chunk.length;
            controller.enqueue(chunk);
          },
        });
        const streamed = await fetch(fn.url, { method: "POST", body: stream });
        const [status, body] = await jsonOf(streamed);
        assert.equal(status, 413);
        assert.equal((body.error as Record<string, string>).code, "payload_too_large");
      });

      await t.step("bad bodies get 400 naming the problem", async () => {
        const [notJson, notJsonBody] = await jsonOf(await signedPost(fn.url, "{not json"));
        assert.equal(notJson, 400);
        assert.equal((notJsonBody.error as Record<string, string>).code, "invalid_json");
        const [noEvent, noEventBody] = await jsonOf(
          await signedPost(fn.url, JSON.stringify({ trip_id: "t-1" })),
        );
        assert.equal(noEvent, 400);
        assert.equal((noEventBody.error as Record<string, string>).field, "event");
      });

      await t.step("events this function does not handle get 422", async () => {
        const [status, body] = await jsonOf(
          await signedPost(fn.url, JSON.stringify({ event: "trip.teleported" })),
        );
        assert.equal(status, 422);
        assert.equal((body.error as Record<string, string>).code, "unsupported_event");
      });

      await t.step("one JSON log line per request, without secrets or bodies", async () => {
        const before = fn.output.length;
        const [status] = await jsonOf(
          await signedPost(fn.url, JSON.stringify({ event: "test.webhook", note: "passport-42" }), {
            id: "msg_logged",
          }),
        );
        assert.equal(status, 200);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const lines = fn.output.slice(before).map((line) => JSON.parse(line));
        assert.equal(lines.length, 1);
        assert.equal(lines[0].function, name);
        assert.equal(lines[0].event, "test.webhook");
        assert.equal(lines[0].webhook_id, "msg_logged");
        assert.equal(lines[0].status, 200);
        assert.equal(typeof lines[0].duration_ms, "number");
        const everything = fn.output.join("\n");
        for (const secret of [SECRET.slice(6), ...Object.values(CONFIGURED).slice(2)]) {
          assert.ok(!everything.includes(secret), `a secret appeared in the log`);
        }
        assert.ok(!everything.includes("passport-42"), "a body appeared in the log");
      });
    } finally {
      await fn.stop();
    }
  });

  Deno.test(`${name}: missing configuration is reported, never a crash`, async () => {
    const fn = await startFunction(name, {});
    try {
      const [status, health] = await jsonOf(await fetch(`${fn.url}/health`));
      assert.equal(status, 200);
      assert.equal(health.status, "degraded");
      assert.ok((health.missing as string[]).includes("WEBHOOK_SECRET"));
      assert.ok((health.missing as string[]).includes("SUPABASE_URL"));
      const [postStatus, body] = await jsonOf(await signedPost(fn.url, TEST_EVENT));
      assert.equal(postStatus, 503);
      assert.equal((body.error as Record<string, string>).code, "not_configured");
      assert.match((body.error as Record<string, string>).message, /WEBHOOK_SECRET/);
    } finally {
      await fn.stop();
    }
  });

  Deno.test(`${name}: rotation and the legacy signature when allowed`, async () => {
    const old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const fn = await startFunction(name, {
      ...CONFIGURED,
      WEBHOOK_SECRET: `${SECRET} ${old}`,
      WEBHOOK_ALLOW_LEGACY: "true",
    });
    try {
      for (const secret of [SECRET, old]) {
        const [status] = await jsonOf(await signedPost(fn.url, TEST_EVENT, { secret }));
        assert.equal(status, 200);
      }
      const [status, body] = await jsonOf(await legacyPost(fn.url, old, TEST_EVENT));
      assert.equal(status, 200);
      assert.equal(body.ok, true);
    } finally {
      await fn.stop();
    }
  });
}

/** A POST as the original TripSage sender made it: hex HMAC-SHA256 of the body, no timestamp. */
async function legacyPost(url: string, secret: string, body: string) {
  const signature = encodeHex(await hmac(secret, body));
  return fetch(url, { method: "POST", body, headers: { "x-webhook-signature": signature } });
}

async function hmac(secret: string, message: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    decodeBase64(secret.replace(/^whsec_/, "")),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message)));
}
