// The main command's server: both functions behind the gateway at /functions/v1/<name>, with the
// local webhook secret the stack prints, and nothing left running after it stops.
import assert from "node:assert/strict";
import { FUNCTIONS, jsonOf, ROOT, signedPost, startStack } from "./support.ts";

Deno.test("local stack: both functions answer through /functions/v1", async (t) => {
  const stack = await startStack();
  let stopped = false;
  try {
    const secret = stack.output
      .map((line) => line.match(/webhook secret: (whsec_\S+)/)?.[1])
      .find(Boolean);
    assert.ok(secret, `the stack prints its webhook secret:\n${stack.output.join("\n")}`);

    for (const name of FUNCTIONS) {
      await t.step(`${name}: /health through the gateway`, async () => {
        const [status, body] = await jsonOf(await fetch(`${stack.url}/${name}/health`));
        assert.equal(status, 200);
        assert.equal(body.function, name);
        assert.equal((body.checks as Record<string, string>).supabase, "ok");
        assert.equal((body.checks as Record<string, string>).webhook_signatures, "ok");
      });

      await t.step(`${name}: a signed test.webhook with the local secret`, async () => {
        const [status, body] = await jsonOf(
          await signedPost(`${stack.url}/${name}`, JSON.stringify({ event: "test.webhook" }), {
            secret,
            id: `msg_stack_${name}`,
          }),
        );
        assert.equal(status, 200);
        assert.equal(body.webhook_id, `msg_stack_${name}`);
        assert.equal(body.function, name);
      });
    }

    await t.step("unknown functions and paths get 404", async () => {
      const [status, body] = await jsonOf(await fetch(`${stack.url}/no-such-function`));
      assert.equal(status, 404);
      assert.equal((body.error as Record<string, string>).code, "function_not_found");
      const [other] = await jsonOf(await fetch(`${stack.api}/nowhere`));
      assert.equal(other, 404);
    });

    await t.step("SIGTERM stops the gateway and every function", async () => {
      const functionPorts = stack.output
        .map((line) => line.match(/\(Deno on 127\.0\.0\.1:(\d+)\)/)?.[1])
        .filter(Boolean);
      assert.equal(functionPorts.length, FUNCTIONS.length);
      await stack.stop();
      stopped = true;
      for (const url of [stack.api, ...functionPorts.map((p) => `http://127.0.0.1:${p}`)]) {
        await assert.rejects(fetch(url), `${url} still answers`);
      }
    });
  } finally {
    if (!stopped) await stack.stop();
  }
});

Deno.test("local stack: verify_jwt in config.toml makes the gateway require a valid JWT", async (t) => {
  // A project whose only function is trip-events' real shim, with verify_jwt on.
  const project = await Deno.makeTempDir();
  await Deno.mkdir(`${project}/supabase`);
  await Deno.writeTextFile(
    `${project}/supabase/config.toml`,
    `[functions.guarded]\nverify_jwt = true\nentrypoint = "${ROOT}supabase/functions/trip-events/index.ts"\n`,
  );
  // The Supabase CLI's well-known local anon key, which the stack prints and signs the same way.
  const anonKey =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0";
  const stack = await startStack({
    project,
    functions: ["guarded"],
    healthHeaders: { authorization: `Bearer ${anonKey}` },
  });
  try {
    const health = `${stack.url}/guarded/health`;
    await t.step("without Authorization: 401 Missing authorization header", async () => {
      const response = await fetch(health);
      assert.equal(response.status, 401);
      assert.deepEqual(await response.json(), {
        code: 401,
        message: "Missing authorization header",
      });
    });
    await t.step("with a forged or malformed JWT: 401 Invalid JWT", async () => {
      for (const token of [`${anonKey}x`, "not-a-jwt"]) {
        const response = await fetch(health, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(response.status, 401);
        assert.deepEqual(await response.json(), { code: 401, message: "Invalid JWT" });
      }
    });
    await t.step("with the anon key: the function answers", async () => {
      const response = await fetch(health, { headers: { authorization: `Bearer ${anonKey}` } });
      const [status, body] = await jsonOf(response);
      assert.equal(status, 200);
      assert.equal(body.function, "trip-events");
    });
  } finally {
    await stack.stop();
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("local stack: --offline-apis points the functions at labelled stand-ins", async () => {
  const stack = await startStack({ args: ["--offline-apis"] });
  try {
    const printed = stack.output.join("\n");
    const base = printed.match(
      /Offline API stand-ins on (http:\/\/127\.0\.0\.1:\d+) \(.*NOT semantic/,
    )
      ?.[1];
    assert.ok(base, `the stack prints the stand-ins, labelled not semantic:\n${printed}`);
    const [, tripEvents] = await jsonOf(await fetch(`${stack.url}/trip-events/health`));
    assert.deepEqual(tripEvents.checks, {
      webhook_signatures: "ok",
      supabase: "ok",
      email: "ok",
      calendar_sync: "ok",
    });
    const [, ai] = await jsonOf(await fetch(`${stack.url}/ai-processing/health`));
    assert.equal((ai.checks as Record<string, string>).openai, "ok");

    const response = await fetch(`${base}/_stand-ins/emails`);
    assert.equal(response.headers.get("x-stand-in"), "not-semantic");
    const [, inbox] = await jsonOf(response);
    assert.deepEqual(inbox.emails, []);
  } finally {
    await stack.stop();
  }
});
