// The link checker of scripts/test: every link in the documentation and every documentation
// reference in the code points at something that exists.
//
//   link       a relative Markdown link `[text](path#anchor)` whose file is not there, or whose
//              anchor is no heading of that file (anchors are GitHub's heading slugs)
//   reference  `docs/<name>.md` or `README.md`, with or without `#anchor`, named in a comment or
//              string of any other file, read from the repository root, that does not resolve
//
// External links (`https:`, `mailto:`) are not fetched, and Markdown in fenced code blocks or
// inline code is not read as links.
//
// Usage: deno run --allow-read --allow-run=git check-links.ts
// Reads the files git knows (tracked, or new and not ignored) from the repository root, except
// lockfiles and this checker's own test fixtures. Prints one line per finding,
// `file:line: message [rule]`; exits 1 when there is one.

export interface Finding {
  file: string;
  line: number;
  message: string;
  rule: "link" | "reference";
}

export interface Checked {
  findings: Finding[];
  links: number;
  references: number;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen. */
export function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The lines of a Markdown file outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): [number, string][] {
  const lines: [number, string][] = [];
  let fence: string | undefined;
  text.split("\n").forEach((line, i) => {
    const marker = line.match(/^\s*(`{3,}|~{3,})/)?.[1];
    if (marker && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined;
    } else if (fence === undefined) {
      lines.push([i + 1, line]);
    }
  });
  return lines;
}

/** Every anchor a Markdown file offers: its headings' slugs, a repeated one numbered from -1. */
export function anchors(markdown: string): Set<string> {
  const found = new Set<string>();
  const times = new Map<string, number>();
  for (const [, line] of proseLines(markdown)) {
    const heading = line.match(/^#{1,6}\s+(.*?)\s*#*\s*$/)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const n = times.get(base) ?? 0;
    times.set(base, n + 1);
    found.add(n === 0 ? base : `${base}-${n}`);
  }
  return found;
}

/** `a/b/../c` → `a/c`, relative to the repository root; undefined when it leaves the root. */
function normalize(path: string): string | undefined {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.join("/");
}

const EXTERNAL = /^[a-z][a-z0-9+.-]*:/i;
const LINK = /\[(?:[^\]`]|`[^`]*`)*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g;
const REFERENCE = /(?<![\w./-])((?:docs\/[\w.-]+\.md|README\.md)(?:#[\w-]+)?)/g;

/**
 * Checks `files` (repository path → text). `exists` says whether a path that is not among the
 * text files (a directory, a binary file) is in the repository.
 */
export function checkLinks(
  files: Map<string, string>,
  exists: (path: string) => boolean = () => false,
): Checked {
  const anchorsOf = new Map<string, Set<string>>();
  const anchorsIn = (path: string) => {
    let found = anchorsOf.get(path);
    if (found === undefined) {
      found = anchors(files.get(path) ?? "");
      anchorsOf.set(path, found);
    }
    return found;
  };
  const findings: Finding[] = [];
  let links = 0;
  let references = 0;

  // Why `written` does not resolve, if it doesn't: `base` is the directory it is read from, `from`
  // the file it is written in (for a bare `#anchor`).
  const problem = (written: string, base: string, from: string): string | undefined => {
    const hash = written.indexOf("#");
    const pathPart = hash < 0 ? written : written.slice(0, hash);
    const anchor = hash < 0 ? "" : decodeURIComponent(written.slice(hash + 1));
    const path = pathPart === "" ? from : normalize(base + pathPart)?.replace(/\/$/, "");
    if (path === undefined) return `${written} leaves the repository`;
    if (!files.has(path) && !exists(path)) return `${pathPart} does not exist`;
    if (anchor === "") return undefined;
    if (path.endsWith(".md")) {
      return anchorsIn(path).has(anchor) ? undefined : `${path} has no heading #${anchor}`;
    }
    // GitHub's line anchors are the only ones a file that is not Markdown has.
    return /^L\d+(-L\d+)?$/.test(anchor) ? undefined : `${written}: no such anchor in ${path}`;
  };

  for (const [file, text] of files) {
    if (file.endsWith(".md")) {
      const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
      for (const [line, prose] of proseLines(text)) {
        const outsideCode = prose.replace(/`[^`]*`/g, (code) => " ".repeat(code.length));
        for (const match of outsideCode.matchAll(LINK)) {
          const target = match[1].replace(/^<|>$/g, "");
          if (EXTERNAL.test(target)) continue;
          links++;
          const why = problem(target, dir, file);
          if (why) findings.push({ file, line, message: why, rule: "link" });
        }
      }
    } else {
      text.split("\n").forEach((content, i) => {
        for (const match of content.matchAll(REFERENCE)) {
          references++;
          const why = problem(match[1], "", file);
          if (why) findings.push({ file, line: i + 1, message: why, rule: "reference" });
        }
      });
    }
  }
  return { findings, links, references };
}

/** This checker's own tests, whose fixtures name documents that do not exist on purpose. */
const FIXTURES = "tests/deno/check_links.test.ts";

/** Files git knows, tracked or new and not ignored, that are not lockfiles or the fixtures. */
async function repositoryFiles(): Promise<string[]> {
  const { code, stdout } = await new Deno.Command("git", {
    args: ["ls-files", "--cached", "--others", "--exclude-standard", "-z"],
    stdout: "piped",
  }).output();
  if (code !== 0) throw new Error("check-links: `git ls-files` failed; run it in the repository");
  return new TextDecoder().decode(stdout).split("\0").filter((path) =>
    path !== "" && path !== FIXTURES && !/(^|\/)(Cargo\.lock|package-lock\.json)$/.test(path)
  );
}

async function main() {
  const paths = await repositoryFiles();
  const known = new Set(paths);
  for (const path of paths) {
    for (let i = path.indexOf("/"); i > 0; i = path.indexOf("/", i + 1)) {
      known.add(path.slice(0, i));
    }
  }
  const files = new Map<string, string>();
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  for (const path of paths) {
    try {
      files.set(path, utf8.decode(await Deno.readFile(path)));
    } catch {
      // A binary file, or one deleted from the work tree: it can be linked to but holds no links.
    }
  }
  const { findings, links, references } = checkLinks(files, (path) => known.has(path));
  for (const f of findings) console.log(`${f.file}:${f.line}: ${f.message} [${f.rule}]`);
  if (findings.length > 0) Deno.exit(1);
  console.log(
    `check-links: ${links} relative links and ${references} documentation references in ${files.size} files resolve`,
  );
}

if (import.meta.main) {
  await main();
}
