// supabase-js (from npm) against the local stack's /rest/v1 on the throwaway test database: the
// query builder's filters, modifiers, mutations, rpc and schemas, RLS through user JWTs, and
// PostgREST's error shape as supabase-js surfaces it.
import assert from "node:assert/strict";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { ANON_KEY, createUser, DB_URL, signJwt, sql, startStack } from "./support.ts";

function client(api: string, token?: string): SupabaseClient {
  return createClient(api, ANON_KEY, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  });
}

function trip(user: string, name: string, destination: string, budget: number | null) {
  return {
    user_id: user,
    name,
    destination,
    budget,
    start_date: "2027-09-01",
    end_date: "2027-09-09",
    notes: budget === null ? null : ["js"],
  };
}

Deno.test("rest: supabase-js works against /rest/v1", async (t) => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL] });
  try {
    const owner = await createUser();
    const stranger = await createUser();
    const db = client(stack.api, owner.token);
    const names = (rows: { name: string }[] | null) => (rows ?? []).map((row) => row.name);

    let ids: number[] = [];
    await t.step("insert an array and select it back", async () => {
      const { data, error, status } = await db.from("trips").insert([
        trip(owner.id, "Alps", "Chamonix, France", 900),
        trip(owner.id, "Coast", "Porto, Portugal", null),
        trip(owner.id, "City", "Paris, France", 2000),
      ]).select("id, name");
      assert.equal(error, null);
      assert.equal(status, 201);
      assert.deepEqual(names(data), ["Alps", "Coast", "City"]);
      ids = data!.map((row) => row.id);
    });

    await t.step("filters, order, range, single and counts", async () => {
      const mine = () => db.from("trips").select("name").eq("user_id", owner.id);
      const cases: [string, PromiseLike<{ data: { name: string }[] | null }>, string[]][] = [
        ["neq + order", mine().neq("name", "Alps").order("name"), ["City", "Coast"]],
        ["gt/lte", mine().gt("budget", 900).lte("budget", 2000), ["City"]],
        ["gte/lt", mine().gte("budget", 900).lt("budget", 2000), ["Alps"]],
        ["ilike", mine().ilike("destination", "%FRANCE").order("id"), ["Alps", "City"]],
        ["like", mine().like("destination", "Po%"), ["Coast"]],
        ["is null", mine().is("budget", null), ["Coast"]],
        ["in", mine().in("name", ["Coast", "City"]).order("name", { ascending: false }), [
          "Coast",
          "City",
        ]],
        ["contains", mine().contains("notes", ["js"]).order("id"), ["Alps", "City"]],
        ["containedBy", mine().containedBy("notes", ["js", "x"]).order("id"), ["Alps", "City"]],
        ["not", mine().not("budget", "is", null).order("id"), ["Alps", "City"]],
        ["or", mine().or("budget.gt.1000,name.eq.Coast").order("id"), ["Coast", "City"]],
        ["range", mine().order("id").range(1, 2), ["Coast", "City"]],
        ["limit", mine().order("id", { ascending: false }).limit(1), ["City"]],
      ];
      for (const [label, query, expected] of cases) {
        const { data } = await query;
        assert.deepEqual(names(data), expected, label);
      }
      const single = await mine().eq("id", ids[0]).single();
      assert.deepEqual(single.data, { name: "Alps" });
      const none = await mine().eq("id", -1).maybeSingle();
      assert.equal(none.data, null);
      const many = await mine().single();
      assert.equal(many.status, 406);
      assert.equal(many.error?.code, "PGRST116");
      const counted = await db.from("trips").select("*", { count: "exact", head: true }).eq(
        "user_id",
        owner.id,
      );
      assert.equal(counted.count, 3);
      assert.equal(counted.data, null);
    });

    await t.step("update, upsert and delete", async () => {
      const updated = await db.from("trips").update({ budget: 950.5 }).eq("id", ids[0]).select();
      assert.equal(updated.data?.[0].budget, 950.5);
      const service = client(
        stack.api,
        await signJwt({ role: "service_role", exp: Math.floor(Date.now() / 1000) + 600 }),
      );
      const collaborator = { trip_id: ids[0], user_id: stranger.id, added_by: owner.id };
      const added = await db.from("trip_collaborators").insert(collaborator).select();
      assert.equal(added.data?.[0].permission_level, "view");
      const ignored = await db.from("trip_collaborators")
        .upsert({ ...collaborator, permission_level: "admin" }, {
          onConflict: "trip_id,user_id",
          ignoreDuplicates: true,
        }).select();
      assert.deepEqual(ignored.data, []);
      const merged = await service.from("trip_collaborators")
        .upsert({ ...collaborator, permission_level: "edit" }, { onConflict: "trip_id,user_id" })
        .select();
      assert.equal(merged.error, null);
      assert.equal(merged.data?.[0].permission_level, "edit");
      const deleted = await db.from("trips").delete().eq("id", ids[1]).select("name");
      assert.deepEqual(names(deleted.data), ["Coast"]);
    });

    await t.step("RLS: each user's JWT decides what they see", async () => {
      const theirs = client(stack.api, stranger.token);
      const shared = await theirs.from("trips").select("name").eq("user_id", owner.id);
      assert.deepEqual(names(shared.data), ["Alps"], "an editor sees only the shared trip");
      const nobody = await client(stack.api, (await createUser()).token)
        .from("trips").select("name").eq("user_id", owner.id);
      assert.deepEqual(nobody.data, []);
      const forged = await theirs.from("trips").insert(trip(owner.id, "Forged", "X", 1));
      assert.equal(forged.status, 403);
      assert.equal(forged.error?.code, "42501");
      const anon = await client(stack.api).from("trips").insert(trip(owner.id, "Anon", "X", 1));
      assert.equal(anon.status, 401);
    });

    await t.step("rpc with named arguments, by POST and by GET", async () => {
      await sql(
        `insert into notifications (user_id, type, title, message)
         values ('${owner.id}', 'trip_invitation', 't', 'm'), ('${owner.id}', 'trip_invitation', 't', 'm')`,
      );
      const count = await db.rpc("get_unread_notification_count");
      assert.equal(count.data, 2);
      const read = await db.rpc("mark_notifications_read", {});
      assert.equal(read.data, 2);
      const again = await db.rpc("get_unread_notification_count", {}, { get: true });
      assert.equal(again.data, 0);
      const visible = await db.rpc("can_view_trip", { p_trip_id: ids[0] }, { get: true });
      assert.equal(visible.data, true, "GET passes arguments in the query string");
      const hidden = await client(stack.api, stranger.token)
        .rpc("can_view_trip", { p_trip_id: ids[2] }, { get: true });
      assert.equal(hidden.data, false);
      const write = await db.rpc("mark_notifications_read", {}, { get: true });
      assert.equal(write.status, 405, "GET runs read-only, as in PostgREST");
      assert.equal(write.error?.code, "25006");
      const missing = await db.rpc("no_such_function", { a: 1 });
      assert.equal(missing.status, 404);
      assert.equal(missing.error?.code, "PGRST202");
    });

    await t.step("schemas and errors in PostgREST's shape", async () => {
      const hidden = await db.schema("auth").from("users").select("*");
      assert.equal(hidden.status, 406);
      assert.equal(hidden.error?.code, "PGRST106");
      const duplicate = await db.from("trip_collaborators").insert({
        trip_id: ids[0],
        user_id: stranger.id,
        added_by: owner.id,
      });
      assert.equal(duplicate.status, 409);
      assert.deepEqual(Object.keys(duplicate.error ?? {}).sort(), [
        "code",
        "details",
        "hint",
        "message",
      ]);
      assert.equal(duplicate.error?.code, "23505");
      const badValue = await db.from("trips").select().eq("start_date", "not a date");
      assert.equal(badValue.status, 400);
      assert.equal(badValue.error?.code, "22007");
    });
  } finally {
    await stack.stop();
  }
});
