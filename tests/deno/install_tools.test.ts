// scripts/install-tools takes the Debian archive from apt's own sources, so a machine with another
// mirror (or a proxy in front of one) builds pgvector and pg_cron from that mirror, and the
// repository names no package host.
import assert from "node:assert/strict";
import { ROOT } from "./support.ts";

/** `install-tools debian-archive` with apt's source lists replaced by `list` and `parts`. */
async function archiveFor(
  list: string,
  parts: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/sources.list.d`);
    await Deno.writeTextFile(`${dir}/sources.list`, list);
    for (const [name, text] of Object.entries(parts)) {
      await Deno.writeTextFile(`${dir}/sources.list.d/${name}`, text);
    }
    await Deno.writeTextFile(
      `${dir}/apt.conf`,
      `Dir::Etc::sourcelist "${dir}/sources.list";\nDir::Etc::sourceparts "${dir}/sources.list.d";\n`,
    );
    const output = await new Deno.Command(`${ROOT}scripts/install-tools`, {
      args: ["debian-archive"],
      env: { APT_CONFIG: `${dir}/apt.conf` },
    }).output();
    const text = new TextDecoder();
    return {
      code: output.code,
      stdout: text.decode(output.stdout).trim(),
      stderr: text.decode(output.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("install-tools: the Debian archive is the one apt is configured with", async (t) => {
  await t.step("deb822 .sources: the first deb stanza that is not a security suite", async () => {
    const sources = `Types: deb
URIs: http://security.mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://sources-only.example/debian
Suites: bookworm

# a stanza that is switched off
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb
# Signed-By and comments may sit between the fields
URIs: http://mirror.example/debian/ http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
`;
    const result = await archiveFor("", { "debian.sources": sources });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "http://mirror.example/debian");
  });

  await t.step("one-line sources.list, with options", async () => {
    const list = `# deb http://commented.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://ftp.example/debian bookworm main
`;
    const result = await archiveFor(list, {});
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "http://ftp.example/debian");
  });

  await t.step("no Debian source at all is an error that says so", async () => {
    const result = await archiveFor("", { "other.sources": "Types: deb-src\nURIs: x\n" });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /no Debian archive in apt's sources/);
  });

  await t.step("the script names no host: every URL comes from the machine", async () => {
    const script = await Deno.readTextFile(`${ROOT}scripts/install-tools`);
    assert.deepEqual(script.match(/\w+:\/\/\S+/g) ?? [], []);
  });
});
