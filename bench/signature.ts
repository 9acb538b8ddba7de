// B2 of scripts/bench: µs per Standard Webhooks verification in Deno, for 1 KB, 16 KB and
// 256 KB bodies, (a) by shared's Rust code in wasm (bench/signature-wasm, built into target/bench
// by scripts/bench) and (b) by WebCrypto HMAC-SHA256. Both parse the secret, compute the MAC of
// `{id}.{timestamp}.{body}`, and compare it with the header's, on every call, as a function does
// per delivery. Prints one JSON object: {"wasm": {"1024": µs, …}, "webcrypto": {…}}.
import { initSync, verify_delivery } from "../target/bench/signature_wasm.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIZES = [1024, 16 * 1024, 256 * 1024];
const ID = "msg_bench";
const NOW = 1_800_000_000;
const TIMESTAMP = String(NOW);

initSync({
  module: await Deno.readFile(new URL("../target/bench/signature_wasm_bg.wasm", import.meta.url)),
});

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function signedContent(body: Uint8Array): Uint8Array<ArrayBuffer> {
  const prefix = new TextEncoder().encode(`${ID}.${TIMESTAMP}.`);
  const content = new Uint8Array(prefix.length + body.length);
  content.set(prefix);
  content.set(body, prefix.length);
  return content;
}

async function mac(secret: string, content: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    decodeBase64(secret.slice("whsec_".length)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, content));
}

/** WebCrypto's verification: the MAC, base64, and a compare that does not stop early. */
async function verifyWithWebCrypto(signature: string, body: Uint8Array): Promise<boolean> {
  const expected = encodeBase64(await mac(SECRET, signedContent(body)));
  let candidates = 0;
  for (const entry of signature.split(" ")) {
    const [version, encoded] = entry.split(",");
    if (version !== "v1" || encoded.length !== expected.length) continue;
    let difference = 0;
    for (let i = 0; i < expected.length; i++) {
      difference |= expected.charCodeAt(i) ^ encoded.charCodeAt(i);
    }
    candidates += difference === 0 ? 1 : 0;
  }
  return candidates > 0;
}

/** Warms up for 0.2 s, then times whole calls for at least 0.5 s (and at least 10 calls). */
async function microsPerCall(verify: () => boolean | Promise<boolean>): Promise<number> {
  const warmUp = performance.now() + 200;
  while (performance.now() < warmUp) {
    if (!(await verify())) throw new Error("a valid signature was refused");
  }
  const started = performance.now();
  let calls = 0;
  while (calls < 10 || performance.now() - started < 500) {
    await verify();
    calls++;
  }
  return (performance.now() - started) * 1000 / calls;
}

const figures: Record<string, Record<string, number>> = { wasm: {}, webcrypto: {} };
for (const size of SIZES) {
  const body = new Uint8Array(size).fill("x".charCodeAt(0));
  const signature = `v1,${encodeBase64(await mac(SECRET, signedContent(body)))}`;
  figures.wasm[size] = await microsPerCall(() =>
    verify_delivery(SECRET, ID, TIMESTAMP, signature, body, NOW)
  );
  figures.webcrypto[size] = await microsPerCall(() => verifyWithWebCrypto(signature, body));
}
console.log(JSON.stringify(figures));
