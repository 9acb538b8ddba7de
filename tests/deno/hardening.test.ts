// What a hostile caller found, kept fixed: each step attacks the running local stack the way the
// finding did and checks that it now holds.
import assert from "node:assert/strict";
import {
  ANON_KEY,
  DB_URL,
  LOCAL_WEBHOOK_SECRET,
  signedPost,
  signJwt,
  standardHeaders,
  startStack,
} from "./support.ts";

/** Open file descriptors of process `pid`. */
async function descriptors(pid: number): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) count++;
  return count;
}

/** The process `root` and all its descendants, from /proc. */
async function processTree(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry.name), ppid);
    } catch {
      // the process ended meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

/** The socket inodes the processes hold open. */
async function socketInodes(pids: number[]): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const pid of pids) {
    try {
      for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
        const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode) inodes.add(inode);
      }
    } catch {
      // the process ended meanwhile
    }
  }
  return inodes;
}

/** Listening TCP sockets of the machine: inode → `address:port` (the kernel's hex notation). */
async function listeningSockets(): Promise<Map<string, string>> {
  const sockets = new Map<string, string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const lines = (await Deno.readTextFile(table)).trim().split("\n").slice(1);
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === "0A") sockets.set(fields[9], fields[1]);
    }
  }
  return sockets;
}

/** 127.0.0.0/8, ::1 or ::ffff:127.x.y.z, as /proc/net/tcp{,6} writes them. */
function isLoopback(local: string): boolean {
  const address = local.split(":")[0];
  if (address.length === 8) return address.endsWith("7F");
  return address === "00000000000000000000000001000000" ||
    (address.startsWith("0000000000000000FFFF0000") && address.endsWith("7F"));
}

/** The running test database's postmaster, from its pid file. */
async function postgresPid(): Promise<number> {
  const dir = Deno.env.get("DB_DATA_DIR");
  assert.ok(dir, "DB_DATA_DIR is not set: run ./scripts/test");
  return Number((await Deno.readTextFile(`${dir}/pgdata/postmaster.pid`)).split("\n")[0]);
}

Deno.test("hardening: the local stack holds against a hostile caller", async (t) => {
  assert.ok(DB_URL, "TRIPSAGE_TEST_DB_URL is not set: run ./scripts/test");
  const stack = await startStack({ args: ["--db-url", DB_URL, "--offline-apis"] });
  const anon = { apikey: ANON_KEY, Authorization: `Bearer ${ANON_KEY}` };
  try {
    await t.step("a logic tree thousands of levels deep is a 400, not a crash", async () => {
      const deep = `(${"and(".repeat(4_000)}id.eq.1${")".repeat(4_000)})`;
      const response = await fetch(`${stack.api}/rest/v1/trips?or=${deep}`, { headers: anon });
      const body = await response.json();
      assert.equal(response.status, 400);
      assert.equal(body.code, "PGRST100");
      assert.equal(body.details, "logic trees nest at most 32 levels deep");
      const after = await fetch(`${stack.api}/rest/v1/trips?select=id&limit=1`, { headers: anon });
      await after.body?.cancel();
      assert.equal(after.status, 200);
      for (const name of ["trip-events", "ai-processing"]) {
        const health = await fetch(`${stack.url}/${name}/health`);
        await health.body?.cancel();
        assert.equal(health.status, 200, name);
      }
    });

    await t.step("every socket of the stack listens on loopback only", async () => {
      const pids = [...await processTree(stack.pid), await postgresPid()];
      const held = await socketInodes(pids);
      const listening = [...(await listeningSockets()).entries()]
        .filter(([inode]) => held.has(inode));
      // The gateway, two functions, the stand-ins and Postgres at least.
      assert.ok(listening.length >= 5, `only ${listening.length} listening sockets found`);
      const exposed = listening.filter(([, local]) => !isLoopback(local));
      assert.deepEqual(exposed, [], "sockets listening beyond loopback (inode, address:port)");
      const banner = stack.output.filter((line) => line.includes("(Deno on 127.0.0.1:"));
      assert.equal(banner.length, 2, stack.output.join("\n"));
    });

    await t.step("a 100 KB event name makes a log line of a bounded size", async () => {
      const event = `trip.${"x".repeat(100_000)}`;
      const body = JSON.stringify({ event, trip_id: 1 });
      const response = await signedPost(`${stack.url}/trip-events`, body, {
        secret: LOCAL_WEBHOOK_SECRET,
      });
      const answer = await response.json();
      assert.equal(response.status, 422);
      assert.ok(JSON.stringify(answer).length < 1_000, "the error message is clipped too");
      // The function's line reaches the stack's output a moment after the answer.
      let line: string | undefined;
      for (let tries = 0; tries < 50 && !line; tries++) {
        line = stack.output.find((l) => l.includes('"status":422') && l.includes("trip.xxx"));
        if (!line) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(line, stack.output.slice(-5).join("\n"));
      assert.ok(line.length < 2_000, `a log line of ${line.length} bytes`);
    });

    await t.step(
      "one set of limits: 431 for a large head, 413 for a large /rest/v1 body",
      async () => {
        // Up to hyper's read buffer (about 400 KB) the gateway reads the head and answers 431; past
        // it hyper refuses the head itself, with 431 or, when the client is still writing, by
        // closing the connection. Either way nothing reaches a function and nothing is a 502.
        // A connection of its own for each request: one that hyper closed must not be reused.
        const send = async (url: string, headers: Record<string, string>) => {
          const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
          try {
            const response = await fetch(url, { method: "POST", headers, body: "{}", client })
              .catch(() => null);
            await response?.body?.cancel();
            return response?.status ?? "closed";
          } finally {
            client.close();
          }
        };
        for (const url of [`${stack.url}/trip-events`, `${stack.api}/rest/v1/trips`]) {
          const pad = "x".repeat(100_000);
          assert.equal(await send(url, { ...anon, "x-pad": pad }), 431, `100 KB head to ${url}`);
          const huge = await send(url, { ...anon, "x-pad": "x".repeat(500_000) });
          assert.ok([431, "closed"].includes(huge), `500 KB head to ${url}: ${huge}`);
        }
        // Oversized signature headers, 42 at once: never forwarded, never a 502.
        const body = '{"event":"test.webhook"}';
        const signed = standardHeaders(body, { secret: LOCAL_WEBHOOK_SECRET });
        const outcomes = await Promise.all(
          [70_000, 200_000, 480_000].flatMap((size) =>
            Array.from({ length: 14 }, () =>
              send(`${stack.url}/trip-events`, {
                ...signed,
                "webhook-signature": `v1,${"A".repeat(size)}`,
              }).then((status) => [size, status] as const))
          ),
        );
        for (const [size, status] of outcomes) {
          const expected = size <= 300_000 ? [431] : [431, "closed"];
          assert.ok(expected.includes(status), `a ${size} B signature header: ${status}`);
        }
        const large = await fetch(`${stack.api}/rest/v1/trips`, {
          method: "POST",
          headers: { ...anon, "content-type": "application/json" },
          body: `[${'{"name":"x"},'.repeat(2_000_000)}{"name":"x"}]`,
        });
        assert.equal(large.status, 413);
        assert.deepEqual(await large.json(), { message: "Request size limit exceeded" });
      },
    );

    await t.step("JWT time claims are checked as PostgREST checks them", async () => {
      const now = Math.floor(Date.now() / 1000);
      const cases: [Record<string, unknown>, string][] = [
        [{ role: "anon", nbf: now + 120 }, "JWT not yet valid"],
        [{ role: "anon", iat: now + 120 }, "JWT issued at future"],
        [{ role: "anon", exp: now - 60 }, "JWT expired"],
      ];
      for (const [claims, message] of cases) {
        const token = await signJwt(claims);
        const response = await fetch(`${stack.api}/rest/v1/trips?select=id&limit=1`, {
          headers: { apikey: ANON_KEY, Authorization: `Bearer ${token}` },
        });
        const body = await response.json();
        assert.equal(response.status, 401, JSON.stringify(claims));
        assert.deepEqual([body.code, body.message], ["PGRST303", message]);
      }
      const token = await signJwt({ role: "anon", nbf: now - 5, iat: now - 5, exp: now + 60 });
      const valid = await fetch(`${stack.api}/rest/v1/trips?select=id&limit=1`, {
        headers: { apikey: ANON_KEY, Authorization: `Bearer ${token}` },
      });
      await valid.body?.cancel();
      assert.equal(valid.status, 200);
    });

    await t.step("idle connections to the functions are closed after a burst", async () => {
      const before = await descriptors(stack.pid);
      // The burst's own connections to the gateway are closed with its client: what stays open
      // after it is the gateway's, to the functions.
      const client = Deno.createHttpClient({});
      await Promise.all(Array.from({ length: 200 }, async () => {
        const response = await fetch(`${stack.url}/trip-events/health`, { client });
        await response.body?.cancel();
      }));
      client.close();
      let after = await descriptors(stack.pid);
      for (let tries = 0; tries < 100 && after > before + 10; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await descriptors(stack.pid);
      }
      assert.ok(
        after <= before + 10,
        `${before} file descriptors before the burst, ${after} after`,
      );
    });
  } finally {
    await stack.stop();
  }
});
