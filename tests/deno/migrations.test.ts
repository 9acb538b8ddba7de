// The migration linter (scripts/lint-migrations.ts): the repository's migrations define each
// object once, and each kind of redefinition is found.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { lintMigrations } from "../../scripts/lint-migrations.ts";

const rules = (migrations: [string, string][]) =>
  lintMigrations(migrations).map((f) => `${f.file}:${f.line} ${f.rule}`);

Deno.test("the repository's migrations define every object once", async () => {
  const dir = new URL("../../supabase/migrations/", import.meta.url);
  const migrations: [string, string][] = [];
  for await (const entry of Deno.readDir(dir)) {
    migrations.push([entry.name, await Deno.readTextFile(new URL(entry.name, dir))]);
  }
  migrations.sort(([a], [b]) => a.localeCompare(b));
  assertEquals(migrations.length >= 9, true);
  assertEquals(lintMigrations(migrations), []);
});

Deno.test("a function defined in two migrations is found, whatever its schema prefix", () => {
  assertEquals(
    rules([
      ["a.sql", "create function public.sweep()\nreturns integer language sql as $$ select 1 $$;"],
      ["b.sql", "-- again\ncreate or replace function sweep() returns integer as $$ select 2 $$;"],
    ]),
    ["b.sql:2 function"],
  );
});

Deno.test("a policy created twice on a table, or patched by alter policy, is found", () => {
  const create = `create policy "Members read" on public.trips for select using (true);`;
  assertEquals(rules([["a.sql", create], ["b.sql", create]]), ["b.sql:1 policy"]);
  assertEquals(
    rules([["a.sql", create], [
      "b.sql",
      `\n\nalter policy "Members read" on public.trips using (false);`,
    ]]),
    ["b.sql:3 policy"],
  );
  // The same policy name on another table is another policy.
  assertEquals(rules([["a.sql", create], ["b.sql", create.replace("trips", "flights")]]), []);
});

Deno.test("a job scheduled twice, a table, index or trigger created twice are found", () => {
  const job = `select cron.schedule('sweep', '*/5 * * * *', $$select 1$$);`;
  assertEquals(rules([["a.sql", job], ["b.sql", job.replace("*/5", "*/30")]]), ["b.sql:1 job"]);
  const objects = `create table public.t (id int);
create unique index t_idx on public.t (id);
create trigger t_changed after insert on public.t for each row execute function f();`;
  assertEquals(rules([["a.sql", objects], ["b.sql", objects]]), [
    "b.sql:1 table",
    "b.sql:2 index",
    "b.sql:3 trigger",
  ]);
});

Deno.test("names built at run time and commented-out statements are not definitions", () => {
  const loop = `do $$ begin
  execute format('create trigger set_updated_at before update on public.%I for each row
    execute function public.set_updated_at()', 'trips');
end $$;
-- create function public.sweep() returns int as $$ select 1 $$;`;
  assertEquals(rules([["a.sql", loop], ["b.sql", loop]]), []);
});
