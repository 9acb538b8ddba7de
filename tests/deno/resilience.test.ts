// Resilience of the whole loop: a function process killed in the middle of a burst,
// /rest/v1 unreachable for a while, and PostgreSQL restarted under the delivery worker. Each test
// asserts what a user would see in the end (one invitation per collaborator, one e-mail, every
// delivery succeeded), never how long it took; the deadlines are only for waiting.
import assert from "node:assert/strict";
import {
  createUser,
  DB_URL,
  freePort,
  jsonOf,
  ROOT,
  type Server,
  SERVICE_ROLE_KEY,
  sql,
  sqlAt,
  startStack,
  until,
  waitFor,
} from "./support.ts";

/** A trip with `count` new collaborators, inserted in one transaction after `prelude`. */
async function tripWithCollaborators(count: number, run = sql, prelude = "") {
  const owner = crypto.randomUUID();
  const friends = Array.from({ length: count }, () => crypto.randomUUID());
  const users = [owner, ...friends].map((id) =>
    `('${id}', '${id}@example.com', 'authenticated', 'authenticated')`
  );
  const trip = (await run(`begin;
    ${prelude}
    insert into auth.users (id, email, role, aud) values ${users.join(", ")};
    insert into trips (user_id, name, destination, start_date, end_date)
      values ('${owner}', 'Resilience', 'Porto, Portugal', '2027-05-01', '2027-05-04');
    insert into trip_collaborators (trip_id, user_id, added_by, permission_level)
      select t.id, f.id::uuid, t.user_id, 'view'
      from trips t, unnest(array['${friends.join("','")}']) f (id)
      where t.user_id = '${owner}';
    commit;
    select id from trips where user_id = '${owner}';`)).split("\n").at(-1)!;
  return { trip, friends };
}

/** "<collaborators with an invitation> <invitations>" for the trip. */
function invitations(trip: string) {
  return `select count(distinct user_id) || ' ' || count(*) from notifications
          where type = 'trip_collaboration_invite' and metadata ->> 'trip_id' = '${trip}'`;
}

/** "<deliveries that succeeded> <attempts neither succeeded nor retried>" for the trip. */
function deliveries(trip: string) {
  return `select count(distinct webhook_id) filter (where status = 'succeeded') || ' ' ||
                 count(*) filter (where status not in ('succeeded', 'retried'))
          from webhook_logs
          where event_type = 'trip.collaborator.added' and payload ->> 'trip_id' = '${trip}'`;
}

/** Points the seeded webhook `name` at `stack` with room for `retries` retries; returns the undo. */
async function aim(
  name: "trip_events" | "ai_processing",
  stack: Server & { api: string },
  retries: number,
  run = sql,
) {
  const port = new URL(stack.api).port;
  const before = await run(`select retry_config from webhook_configs where name = '${name}'`);
  await run(
    `update webhook_configs set url = replace(url, '127.0.0.1:54321', '127.0.0.1:${port}'),
       retry_config = retry_config || '{"max_retries": ${retries}}'
     where name = '${name}'`,
  );
  return () =>
    run(
      `update webhook_configs set url = replace(url, '127.0.0.1:${port}', '127.0.0.1:54321'),
         retry_config = '${before}'
       where name = '${name}'`,
    );
}

const aimTripEvents = (stack: Server & { api: string }, retries: number, run = sql) =>
  aim("trip_events", stack, retries, run);

/** Runs every clean-up step even when one fails, then throws the first failure. */
async function cleanUp(...steps: (() => Promise<unknown> | undefined)[]) {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw failures[0];
}

Deno.test("resilience: trip-events killed mid-burst is restarted and handles every event exactly once", async () => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL, "--offline-apis"] });
  const log = () => stack.output.join("\n");
  const standIns = log().match(/stand-ins on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
  const pid = Number(log().match(/trip-events +http\S+ +\(Deno on [\d.:]+\) pid (\d+)/)?.[1]);
  assert.ok(standIns && pid, `the banner names the stand-ins and trip-events' pid:\n${log()}`);
  const restore = await aimTripEvents(stack, 10);
  try {
    const handled = () =>
      log().match(/"event":"trip\.collaborator\.added".*"status":200/g)?.length ?? 0;
    // Three of pg_net's batches of 200: the kill lands in the first, the others are sent after.
    const { trip, friends } = await tripWithCollaborators(600);

    await until(() => handled() >= 10, "trip-events handles the first invitations");
    Deno.kill(pid, "SIGKILL");
    const [done] = (await sql(invitations(trip))).split(" ").map(Number);
    assert.ok(done < friends.length, `killed mid-burst (${done} invitations written)`);
    await until(
      () => /\[trip-events\] restarted, pid \d+/.test(log()),
      "the stack restarts trip-events",
    );
    assert.match(log(), /\[trip-events\] exited \(signal: 9 \(SIGKILL\)\); restarting/);
    assert.notEqual(Number(log().match(/\[trip-events\] restarted, pid (\d+)/)?.[1]), pid);

    await waitFor(deliveries(trip), `${friends.length} 0`, 120);
    assert.equal(await sql(invitations(trip)), `${friends.length} ${friends.length}`);
    const retried = Number(
      await sql(`select count(*) from webhook_logs
                 where payload ->> 'trip_id' = '${trip}' and status = 'retried'`),
    );
    assert.ok(retried > 0, "deliveries cut off by the kill were retried");
    const [, inbox] = await jsonOf(await fetch(`${standIns}/_stand-ins/emails`));
    const addresses = new Set(friends.map((id) => `${id}@example.com`));
    const sent = (inbox.emails as { email: { to: string[] } }[])
      .flatMap((sent) => sent.email.to).filter((to) => addresses.has(to));
    assert.equal(sent.length, friends.length, "one e-mail per collaborator");
    assert.equal(new Set(sent).size, friends.length);
  } finally {
    await cleanUp(restore, () => stack.stop());
  }
});

Deno.test("resilience: ai-processing killed while embedding: later, every memory is embedded, each once", async () => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL, "--offline-apis"] });
  const log = () => stack.output.join("\n");
  const standIns = log().match(/stand-ins on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
  const pid = Number(log().match(/ai-processing +http\S+ +\(Deno on [\d.:]+\) pid (\d+)/)?.[1]);
  assert.ok(standIns && pid, `the banner names the stand-ins and ai-processing's pid:\n${log()}`);
  const restore = await aim("ai_processing", stack, 3);
  // Every write of a vector, counted per memory.
  await sql(`create table if not exists public.resilience_embedding_writes (memory_id bigint);
    create or replace function public.resilience_count_embedding_write() returns trigger
      language plpgsql as $$ begin
        insert into public.resilience_embedding_writes values (new.id); return null; end $$;
    create or replace trigger resilience_count_embedding_write after update of embedding
      on public.memories for each row when (new.embedding is distinct from old.embedding)
      execute function public.resilience_count_embedding_write();`);
  try {
    const { id: user } = await createUser();
    const ids = await sql(
      `with m as (insert into memories (user_id, content, memory_type)
         select '${user}', format('killed mid-embedding %s: window seat, late trains', n),
                'trip_history'
         from generate_series(1, 3000) n returning id)
       select string_agg(id::text, ',' order by id) from m`,
    );
    const embedded = () =>
      sql(`select count(*) from memories where id in (${ids}) and embedding is not null`).then(
        Number,
      );
    await until(async () => await embedded() > 0, "ai-processing stores its first vectors");
    Deno.kill(pid, "SIGKILL");
    const cut = await embedded();
    assert.ok(cut < 3000, `killed while embedding (${cut} of 3000 stored)`);
    await until(
      () => /\[ai-processing\] restarted, pid \d+/.test(log()),
      "the stack restarts ai-processing",
    );

    // What the dead worker held stays leased until its lease runs out (120 s); run that clock
    // forward, then run the sweep, as pg_cron does every five minutes.
    await sql(`update memories set embedding_lease_until = now()
               where id in (${ids}) and embedding_lease_until > now()`);
    await sql(`select enqueue_memory_embeddings()`);
    await waitFor(
      `select count(*) from memories where id in (${ids}) and embedding is not null`,
      "3000",
      120,
    );
    assert.equal(
      await sql(`select count(*) || ' ' || count(distinct memory_id)
                 from resilience_embedding_writes where memory_id in (${ids})`),
      "3000 3000",
      "every memory's vector written exactly once",
    );
  } finally {
    await cleanUp(
      () =>
        sql(`drop trigger if exists resilience_count_embedding_write on public.memories;
             drop function if exists public.resilience_count_embedding_write();
             drop table if exists public.resilience_embedding_writes;`),
      restore,
      () => stack.stop(),
    );
  }
});

/** A TCP proxy that can be switched off (connection refused) and on again on the same port. */
class SwitchableProxy {
  readonly port = freePort();
  #listener?: Deno.Listener;
  #accepting?: Promise<void>;
  #open = new Set<Deno.Conn>();
  #piping = new Set<Promise<void>>();

  constructor(private readonly target: () => number) {}

  on() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#listener = listener;
    this.#accepting = (async () => {
      for await (const client of listener) this.#forward(client);
    })().catch(() => {});
  }

  /** Refuses new connections and cuts the open ones. */
  async off() {
    this.#listener?.close();
    this.#listener = undefined;
    await this.#accepting;
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
    this.#open.clear();
    await Promise.all(this.#piping);
  }

  #forward(client: Deno.Conn) {
    this.#open.add(client);
    const piping = (async () => {
      let upstream: Deno.Conn | undefined;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.target() });
        this.#open.add(upstream);
        await Promise.all([
          client.readable.pipeTo(upstream.writable),
          upstream.readable.pipeTo(client.writable),
        ]);
      } catch {
        // cut by off(), or closed by either end
      } finally {
        for (const conn of [client, upstream]) {
          if (conn && this.#open.delete(conn)) {
            try {
              conn.close();
            } catch {
              // already closed
            }
          }
        }
      }
    })();
    this.#piping.add(piping);
    piping.finally(() => this.#piping.delete(piping));
  }
}

Deno.test("resilience: /rest/v1 unreachable for a while gives 503s that are retried until every invitation is written", async () => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  // The functions reach /rest/v1 only through the proxy; the gateway itself stays up.
  let stackPort = 0;
  const proxy = new SwitchableProxy(() => stackPort);
  const project = await Deno.makeTempDir({ prefix: "tripsage-resilience-" });
  const envFile = `${project}/functions.env`;
  await Deno.writeTextFile(envFile, `SUPABASE_URL=http://127.0.0.1:${proxy.port}\n`);
  let stack: (Server & { api: string }) | undefined;
  let restore = () => Promise.resolve("");
  try {
    proxy.on();
    stack = await startStack({ args: ["--db-url", DB_URL, "--env-file", envFile] });
    stackPort = Number(new URL(stack.api).port);
    restore = await aimTripEvents(stack, 10);

    await proxy.off();
    const { trip, friends } = await tripWithCollaborators(5);
    // Every delivery has been answered 503 at least once while /rest/v1 could not be reached.
    await waitFor(
      `select count(distinct webhook_id) from webhook_logs
       where payload ->> 'trip_id' = '${trip}' and response_status = 503`,
      String(friends.length),
      60,
    );
    assert.equal(await sql(invitations(trip)), "0 0");
    proxy.on();

    await waitFor(deliveries(trip), `${friends.length} 0`, 120);
    assert.equal(await sql(invitations(trip)), `${friends.length} ${friends.length}`);
    const attempts = (await sql(
      `select string_agg(status || ':' || response_status || ':' ||
                         coalesce(response_body::jsonb #>> '{error,code}', 'ok'), ' '
                         order by attempt_count)
       from webhook_logs where payload ->> 'trip_id' = '${trip}' group by webhook_id`,
    )).split("\n");
    assert.equal(attempts.length, friends.length);
    for (const history of attempts) {
      assert.match(history, /^(retried:503:upstream_unavailable )+succeeded:200:ok$/);
    }
  } finally {
    await cleanUp(
      restore,
      () => stack?.stop(),
      () => proxy.off(),
      () => Deno.remove(project, { recursive: true }),
    );
  }
});

/** scripts/db with its own data directory and port: a database only this test uses. */
function throwawayDatabase(dataDir: string, port: number) {
  const db = async (command: string) => {
    const { code, stderr } = await new Deno.Command(`${ROOT}scripts/db`, {
      args: [command],
      env: { DB_DATA_DIR: dataDir, DB_PORT: String(port) },
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      throw new Error(`scripts/db ${command} failed:\n${new TextDecoder().decode(stderr)}`);
    }
  };
  const url = `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
  const run = (query: string) => sqlAt(url, query);
  return { url, start: () => db("start"), stop: () => db("stop"), run };
}

Deno.test("resilience: PostgreSQL restarted under the stack: the worker reconnects and delivers, /rest/v1 answers", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "tripsage-resilience-db." });
  const database = throwawayDatabase(dataDir, freePort());
  let stack: (Server & { api: string }) | undefined;
  try {
    await database.start();
    stack = await startStack({ args: ["--db-url", database.url] });
    await aimTripEvents(stack, 3, database.run);
    const rest = (path: string) =>
      fetch(`${stack!.api}/rest/v1/${path}`, {
        headers: { apikey: SERVICE_ROLE_KEY, authorization: `Bearer ${SERVICE_ROLE_KEY}` },
      });
    const restAnswers = async () => {
      const answers = await Promise.all(Array.from({ length: 4 }, () => rest("trips?select=id")));
      await Promise.all(answers.map((answer) => answer.body?.cancel()));
      return answers.map((answer) => answer.status);
    };
    const delivered = async (count: number, prelude = "") => {
      const { trip } = await tripWithCollaborators(count, database.run, prelude);
      await until(
        async () => (await database.run(deliveries(trip))) === `${count} 0`,
        `all ${count} deliveries succeed`,
      );
      assert.equal(await database.run(invitations(trip)), `${count} ${count}`);
    };
    // Several pooled /rest/v1 connections, and deliveries, before the restart.
    assert.deepEqual(await restAnswers(), [200, 200, 200, 200]);
    await delivered(2);

    await database.stop();
    await database.start();
    assert.deepEqual(await restAnswers(), [200, 200, 200, 200], "no dead pooled connection");
    await delivered(2);
    assert.match(stack.output.join("\n"), /local-stack: .*pg_net worker.*; retrying in 1 s/);

    // Queued while the worker is disconnected: its connection is cut in the same transaction,
    // and it connects again a second later, then sends what was queued meanwhile.
    await delivered(
      2,
      `select pg_terminate_backend(pid) from pg_stat_activity
       where application_name = 'pg_net worker';`,
    );
  } finally {
    await cleanUp(
      () => stack?.stop(),
      database.stop,
      () => Deno.remove(dataDir, { recursive: true }),
    );
  }
});
