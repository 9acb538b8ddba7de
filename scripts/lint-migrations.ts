// The migration linter of scripts/test: every database object is defined by one statement in one
// migration of supabase/migrations, so that reading a migration tells what the object is.
//
//   function   `create [or replace] function` of the same name twice (a second definition
//              silently replaces the first)
//   policy     `create policy` of the same name on the same table twice, or `alter policy`
//              (a policy patched after it was created)
//   job        `cron.schedule` of the same job name twice
//   table, index, trigger
//              created twice under the same name
//
// Names built at run time (`execute format(…)` in a DO block) are not seen. Once the project is
// deployed, a change to the schema is a new forward migration, and this linter's rule is relaxed
// for the objects that migration replaces.
//
// Usage: deno run --allow-read lint-migrations.ts [DIR] (default: supabase/migrations).
// Prints one line per finding, `file:line: message [rule]`; exits 1 when there is one.

export interface Finding {
  file: string;
  line: number;
  message: string;
  rule: string;
}

interface Definition {
  file: string;
  line: number;
}

const IDENT = String.raw`(?:"[^"]+"|[\w$]+)`;
const QUALIFIED = String.raw`(?:${IDENT}\.)?${IDENT}`;

/** What each statement kind defines, as (rule, regex whose groups make the key). */
const DEFINITIONS: [string, RegExp][] = [
  [
    "function",
    new RegExp(String.raw`\bcreate\s+(?:or\s+replace\s+)?function\s+(${QUALIFIED})\s*\(`, "gi"),
  ],
  [
    "policy",
    new RegExp(
      String.raw`\b(?:create|alter)\s+policy\s+(${IDENT})\s+on\s+(${QUALIFIED})(?=[\s;])`,
      "gi",
    ),
  ],
  ["job", /\bcron\.schedule\s*\(\s*'([^']+)'/gi],
  [
    "table",
    new RegExp(String.raw`\bcreate\s+table\s+(?:if\s+not\s+exists\s+)?(${QUALIFIED})`, "gi"),
  ],
  [
    "index",
    new RegExp(
      String
        .raw`\bcreate\s+(?:unique\s+)?index\s+(?:concurrently\s+)?(?:if\s+not\s+exists\s+)?(${IDENT})\s+on\b`,
      "gi",
    ),
  ],
  [
    "trigger",
    new RegExp(
      String
        .raw`\bcreate\s+(?:or\s+replace\s+)?trigger\s+(${IDENT})\s+[\s\S]*?\bon\s+(${QUALIFIED})(?=[\s;])`,
      "gi",
    ),
  ],
];

/** `public.x` and `x` name the same object; quoted names keep their case. */
function normalize(name: string): string {
  const parts = name.split(".").map((part) => part.startsWith('"') ? part : part.toLowerCase());
  if (parts.length === 2 && parts[0] === "public") parts.shift();
  return parts.join(".");
}

/** SQL with its `--` comments blanked out, offsets kept, so lines still count. */
function code(sql: string): string {
  // Dollar-quoted bodies are kept: objects are defined there too (cron.schedule in a DO block).
  return sql.replace(/--[^\n]*/g, (comment) => " ".repeat(comment.length));
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Findings over migrations given as (file name, SQL), in the order they apply. */
export function lintMigrations(migrations: [string, string][]): Finding[] {
  const seen = new Map<string, Definition>();
  const findings: Finding[] = [];
  for (const [file, sql] of migrations) {
    const text = code(sql);
    for (const [rule, pattern] of DEFINITIONS) {
      for (const match of text.matchAll(pattern)) {
        const line = lineOf(text, match.index ?? 0);
        const names = match.slice(1).map(normalize);
        const label = rule === "policy" || rule === "trigger"
          ? `${rule} ${names[0]} on ${names[1]}`
          : `${rule} ${names[0]}`;
        if (rule === "policy" && /^alter/i.test(match[0])) {
          findings.push({
            file,
            line,
            message: `${label} is patched by alter policy: change its create policy instead`,
            rule,
          });
          continue;
        }
        const key = `${rule}:${names.join(" on ")}`;
        const first = seen.get(key);
        if (first) {
          const verb = rule === "job" ? "scheduled" : "defined";
          findings.push({
            file,
            line,
            message: `${label} is ${verb} again (first at ${first.file}:${first.line})`,
            rule,
          });
        } else {
          seen.set(key, { file, line });
        }
      }
    }
  }
  return findings;
}

async function main(dir: string) {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".sql")) names.push(entry.name);
  }
  names.sort();
  const migrations: [string, string][] = await Promise.all(
    names.map(async (name): Promise<[string, string]> => [
      `${dir}/${name}`,
      await Deno.readTextFile(`${dir}/${name}`),
    ]),
  );
  const findings = lintMigrations(migrations);
  for (const f of findings) console.log(`${f.file}:${f.line}: ${f.message} [${f.rule}]`);
  if (findings.length > 0) Deno.exit(1);
  console.log(`lint-migrations: ${names.length} migrations, every object defined once`);
}

if (import.meta.main) {
  await main(Deno.args[0] ?? "supabase/migrations");
}
