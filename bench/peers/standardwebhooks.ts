// A TypeScript trip-events peer checking signatures with the Standard Webhooks npm library, one
// `Webhook` per secret of `WEBHOOK_SECRET` (rotation): the first that accepts wins.
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { serveFunction, type SignatureCheck, signatureError, signedHeaders } from "./contract.ts";

const LIBRARY_CODES: Record<string, string> = {
  "Missing required headers": "missing_signature_header",
  "Invalid Signature Headers": "invalid_signature_header",
  "Message timestamp too old": "timestamp_too_old",
  "Message timestamp too new": "timestamp_in_future",
  "No matching signature found": "invalid_signature",
};

export function libraryCheck(secrets: string | undefined): SignatureCheck {
  const webhooks = (secrets ?? "").split(/\s+/).filter(Boolean).map((s) => new Webhook(s));
  const decoder = new TextDecoder();
  return (headers, body) => {
    const { id } = signedHeaders(headers);
    const payload = decoder.decode(body);
    const signed = Object.fromEntries(headers);
    let refusal = "No matching signature found";
    for (const webhook of webhooks) {
      try {
        webhook.verify(payload, signed, { jsonParse: false });
        return Promise.resolve(id);
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
        refusal = error.message;
      }
    }
    throw signatureError(LIBRARY_CODES[refusal] ?? "invalid_signature", refusal);
  };
}

serveFunction(libraryCheck(Deno.env.get("WEBHOOK_SECRET")));
