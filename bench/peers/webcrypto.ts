// A TypeScript trip-events peer checking Standard Webhooks signatures with WebCrypto HMAC-SHA256:
// the keys imported once, each listed `v1` signature compared in constant time.
import {
  secretKeys,
  serveFunction,
  type SignatureCheck,
  signatureError,
  signedHeaders,
} from "./contract.ts";

function base64Decode(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** The check with keys imported from `WEBHOOK_SECRET`. */
export async function webCryptoCheck(secrets: string | undefined): Promise<SignatureCheck> {
  const keys = await Promise.all(
    secretKeys(secrets).map((key) =>
      crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
    ),
  );
  const encoder = new TextEncoder();
  return async (headers, body) => {
    const { id, timestamp, list } = signedHeaders(headers);
    const candidates = list.split(/\s+/).flatMap((entry) => {
      const [version, encoded] = entry.split(",", 2);
      const mac = version === "v1" && encoded ? base64Decode(encoded) : undefined;
      return mac?.length === 32 ? [mac] : [];
    });
    if (candidates.length === 0) {
      throw signatureError("invalid_signature_header", "the webhook-signature header is malformed");
    }
    const prefix = encoder.encode(`${id}.${timestamp}.`);
    const signed = new Uint8Array(prefix.length + body.length);
    signed.set(prefix);
    signed.set(body, prefix.length);
    let found = false;
    for (const key of keys) {
      const expected = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
      for (const candidate of candidates) found = constantTimeEqual(expected, candidate) || found;
    }
    if (!found) throw signatureError("invalid_signature", "no signature matches the payload");
    return id;
  };
}

if (import.meta.main) serveFunction(await webCryptoCheck(Deno.env.get("WEBHOOK_SECRET")));
