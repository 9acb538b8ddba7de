// The production path's own parts: the workflow linter finds what it is for, the three workflows
// pass it and do what docs/operations.md#deploying-to-a-hosted-project says in that order, and scripts/set-secrets hands the
// CLI exactly the configured values without printing them.
import assert from "node:assert/strict";
import { parse } from "yaml";
import { type Finding, lintWorkflow } from "../../scripts/lint-workflows.ts";
import { ROOT } from "./support.ts";

const WORKFLOWS = ["ci.yml", "deploy.yml", "rollback.yml"];
const CHECKOUT = "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8";

const rules = (findings: Finding[]) => findings.map((f) => `${f.line}:${f.rule}`).sort();

Deno.test("workflows: the three workflows pass actionlint and the project's rules", async () => {
  for (const name of WORKFLOWS) {
    const text = await Deno.readTextFile(`${ROOT}.github/workflows/${name}`);
    assert.deepEqual(await lintWorkflow(name, text), [], name);
  }
});

Deno.test("workflows: the linter reports each rule where it is broken", async () => {
  const broken = `name: broken
on: push
permissions: write-all
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v5
      - uses: ${CHECKOUT}
        with:
          persist-credentials: false
      - run: echo hi
        shell: bashh
  reuse:
    uses: octo/workflows/.github/workflows/x.yml@main
`;
  assert.deepEqual(rules(await lintWorkflow("broken.yml", broken)), [
    "13:actionlint shell-name",
    "15:pinned",
    "3:permissions",
    "5:timeout",
    "8:credentials",
    "8:pinned",
  ]);
  const noPermissions = `on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - run: echo \${{ vars.UNKNOWN_IS_FINE }} \${{ secretz.X }}
`;
  assert.deepEqual(rules(await lintWorkflow("none.yml", noPermissions)), [
    "1:permissions",
    "7:actionlint expression",
  ]);
});

interface Step {
  name?: string;
  run?: string;
  uses?: string;
  with?: Record<string, unknown>;
}

async function workflow(name: string) {
  return parse(await Deno.readTextFile(`${ROOT}.github/workflows/${name}`)) as {
    on: Record<string, unknown>;
    permissions: Record<string, string>;
    jobs: Record<string, { steps: Step[]; environment?: string; container?: string }>;
  };
}

/** Index of the first step whose `run` matches, failing when there is none. */
function stepIndex(steps: Step[], pattern: RegExp) {
  const index = steps.findIndex((step) => pattern.test(step.run ?? ""));
  assert.ok(index >= 0, `a step runs ${pattern}`);
  return index;
}

Deno.test("workflows: CI runs the README test command with read-only permissions", async () => {
  const ci = await workflow("ci.yml");
  assert.deepEqual(ci.permissions, { contents: "read" });
  const steps = ci.jobs.test.steps;
  assert.equal(steps.at(-1)?.run, "./scripts/test");
});

Deno.test("workflows: deploy builds, pushes, sets secrets, deploys both functions, then verifies", async () => {
  const deploy = await workflow("deploy.yml");
  assert.deepEqual(deploy.permissions, { contents: "read" });
  assert.equal(deploy.jobs.deploy.environment, "production");
  const steps = deploy.jobs.deploy.steps;
  const order = [
    /^\.\/scripts\/build-wasm$/,
    /supabase link --project-ref/,
    /supabase db push$/,
    /^\.\/scripts\/set-secrets$/,
    /^docker info/,
    /supabase functions deploy trip-events ai-processing$/,
    /^\.\/scripts\/verify-deployment$/,
  ].map((pattern) => stepIndex(steps, pattern));
  assert.deepEqual(order, [...order].sort((a, b) => a - b), "in this order");
  const text = await Deno.readTextFile(`${ROOT}.github/workflows/deploy.yml`);
  assert.doesNotMatch(text, /db reset/);
});

Deno.test("workflows: rollback redeploys the chosen ref's functions and verifies, leaving the data alone", async () => {
  const rollback = await workflow("rollback.yml");
  assert.deepEqual(rollback.permissions, { contents: "read" });
  const steps = rollback.jobs.rollback.steps;
  assert.equal(steps[0].with?.ref, "${{ inputs.ref }}");
  const build = stepIndex(steps, /^\.\/scripts\/build-wasm$/);
  const deploy = stepIndex(steps, /supabase functions deploy trip-events ai-processing/);
  const verify = stepIndex(steps, /^\.\/scripts\/verify-deployment$/);
  assert.ok(build < deploy && deploy < verify);
  assert.ok(!steps.some((step) => /db (reset|push)/.test(step.run ?? "")));
});

/** Runs scripts/set-secrets with a stand-in CLI that records its arguments and env file. */
async function setSecrets(env: Record<string, string>, ...args: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "set-secrets-" });
  const cli = `${dir}/supabase`;
  await Deno.writeTextFile(
    cli,
    `#!/usr/bin/env bash
printf '%s\\n' "$@" >"${dir}/args"
while [ $# -gt 0 ]; do
  if [ "$1" = --env-file ]; then cp "$2" "${dir}/env"; stat -c %a "$2" >"${dir}/mode"; echo "$2" >"${dir}/path"; fi
  shift
done
`,
  );
  await Deno.chmod(cli, 0o755);
  const { code, stdout, stderr } = await new Deno.Command(`${ROOT}scripts/set-secrets`, {
    args,
    env: { PATH: Deno.env.get("PATH") ?? "", SUPABASE_CLI: cli, ...env },
    clearEnv: true,
  }).output();
  const read = (name: string) => Deno.readTextFile(`${dir}/${name}`).catch(() => undefined);
  const result = {
    code,
    out: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr),
    args: await read("args"),
    env: await read("env"),
    mode: (await read("mode"))?.trim(),
    path: (await read("path"))?.trim(),
  };
  await Deno.remove(dir, { recursive: true });
  return result;
}

Deno.test("set-secrets: passes exactly the configured values through a private file, printing only names", async () => {
  const two = "whsec_bmV3LXNlY3JldC1uZXctc2VjcmV0 whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0";
  const result = await setSecrets(
    {
      WEBHOOK_SECRET: two,
      OPENAI_API_KEY: "sk-test-$HOME-not-expanded",
      EMAIL_FROM: "TripSage <trips@example.com>",
      RESEND_API_KEY: "",
      SUPABASE_ACCESS_TOKEN: "sbp_not_a_function_secret",
    },
    "--project-ref",
    "abcdefghijklmnopqrst",
  );
  assert.equal(result.code, 0, result.out);
  assert.equal(
    result.args,
    `secrets\nset\n--env-file\n${result.path}\n--project-ref\nabcdefghijklmnopqrst\n`,
  );
  assert.equal(
    result.env,
    `WEBHOOK_SECRET='${two}'\nOPENAI_API_KEY='sk-test-$HOME-not-expanded'\n` +
      `EMAIL_FROM='TripSage <trips@example.com>'\n`,
  );
  assert.equal(result.mode, "600", "only this user can read the file");
  assert.ok(result.path && !(await Deno.stat(result.path).catch(() => undefined)), "removed");
  assert.match(result.out, /setting WEBHOOK_SECRET OPENAI_API_KEY EMAIL_FROM/);
  for (const value of [...two.split(" "), "sk-test", "trips@example.com", "sbp_"]) {
    assert.ok(!result.out.includes(value), "no value is printed");
  }
});

Deno.test("set-secrets: refuses a missing or malformed WEBHOOK_SECRET and quoted values, calling nothing", async () => {
  for (
    const [env, message] of [
      [{}, /WEBHOOK_SECRET is not set/],
      [{ WEBHOOK_SECRET: "not-whsec" }, /must be whsec_/],
      [{ WEBHOOK_SECRET: "whsec_YQ==", EMAIL_FROM: "O'Brien <o@example.com>" }, /single quote/],
    ] as const
  ) {
    const result = await setSecrets(env);
    assert.equal(result.code, 2, result.out);
    assert.match(result.out, message);
    assert.equal(result.args, undefined, "the CLI was not called");
  }
});
