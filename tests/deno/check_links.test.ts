// The link checker (scripts/check-links.ts): GitHub's heading anchors, and each way a link or a
// documentation reference can fail to resolve.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { anchors, checkLinks, slug } from "../../scripts/check-links.ts";

const found = (files: Record<string, string>, exists?: (path: string) => boolean) =>
  checkLinks(new Map(Object.entries(files)), exists).findings.map((f) =>
    `${f.file}:${f.line} ${f.rule} ${f.message}`
  );

Deno.test("headings become GitHub's anchors", () => {
  assertEquals(slug("The local `/rest/v1`"), "the-local-restv1");
  assertEquals(slug("The functions' contract"), "the-functions-contract");
  assertEquals(
    slug("`verify_automation_setup()` reports `missing`"),
    "verify_automation_setup-reports-missing",
  );
  assertEquals(slug("With the Supabase CLI and Docker"), "with-the-supabase-cli-and-docker");
  assertEquals(slug("Deploying to a [hosted](x.md) project"), "deploying-to-a-hosted-project");
  assertEquals(slug("B1 – B6: figures"), "b1--b6-figures");
});

Deno.test("a repeated heading is numbered, and headings in code blocks are not headings", () => {
  assertEquals(
    [...anchors("# Notes\n## Setup\n```sh\n# Setup\n```\n## Setup\n### Setup ###\n")],
    ["notes", "setup", "setup-1", "setup-2"],
  );
});

Deno.test("links to files and headings that exist pass, and are counted", () => {
  const files = {
    "README.md":
      "See [the docs](guide/a.md#second-part), [here](#top) and [b](guide/b.md).\n# Top\n",
    "guide/a.md": "# A\n## Second part\n[back](../README.md#top) [site](https://example.com)\n",
    "guide/b.md": "[a](a.md) [mail](mailto:x@example.com) [dir](../scripts/)\n",
  };
  const result = checkLinks(new Map(Object.entries(files)), (path) => path === "scripts");
  assertEquals(result.findings, []);
  assertEquals(result.links, 6);
});

Deno.test("a missing file, a missing heading and a path out of the repository are found", () => {
  assertEquals(
    found({
      "README.md": "[gone](guide/gone.md)\n\n[anchor](guide/a.md#nowhere) [up](../../etc/passwd)\n",
      "guide/a.md":
        "# A\n[self](#a) [self wrong](#b) [line](../src/main.rs#L3) [code](../src/main.rs#main)\n",
      "src/main.rs": "fn main() {}\n",
    }),
    [
      "README.md:1 link guide/gone.md does not exist",
      "README.md:3 link guide/a.md has no heading #nowhere",
      "README.md:3 link ../../etc/passwd leaves the repository",
      "guide/a.md:2 link guide/a.md has no heading #b",
      "guide/a.md:2 link ../src/main.rs#main: no such anchor in src/main.rs",
    ],
  );
});

Deno.test("links inside code are not links", () => {
  assertEquals(
    found({
      "README.md": "`[x](nowhere.md)`\n```md\n[y](nowhere.md)\n```\n~~~\n[z](gone.md)\n~~~\n",
    }),
    [],
  );
});

Deno.test("documentation references in code resolve from the repository root", () => {
  const files = {
    "docs/ops.md": "# Operations\n## Deploying to a hosted project\n",
    "README.md": "# TripSage Edge\n",
    "supabase/seed.sql": "-- see docs/ops.md#deploying-to-a-hosted-project and README.md\n",
    "scripts/bench": "# (docs/ops.md#deploying) and docs/gone.md, but not mydocs/x.md\n",
  };
  const result = checkLinks(new Map(Object.entries(files)));
  assertEquals(
    result.findings.map((f) => `${f.file}:${f.line} ${f.rule} ${f.message}`),
    [
      "scripts/bench:1 reference docs/ops.md has no heading #deploying",
      "scripts/bench:1 reference docs/gone.md does not exist",
    ],
  );
  assertEquals(result.references, 4);
});
