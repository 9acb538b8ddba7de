// The HTTP contract trip-events keeps, as a Supabase user writes it in TypeScript: CORS on every
// answer, `x-request-id`, `/health`, 405 and 413, the Standard Webhooks check (given by each peer),
// the `test.webhook` answer, `{"error":{"code","message"}}` bodies and one JSON log line per
// request. The peers of scripts/bench B1 and B3 differ only in how they check the signature.

export const FUNCTION = "trip-events";
const MAX_BODY_BYTES = 1024 * 1024;
const TOLERANCE_SECONDS = 300;

const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers":
    "authorization, x-client-info, apikey, content-type, webhook-id, webhook-timestamp, " +
    "webhook-signature, x-webhook-event, x-webhook-attempt, x-webhook-signature",
};

/** A refused request: its status, stable code and message. */
export class EdgeError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function signatureError(code: string, message: string): EdgeError {
  return new EdgeError(401, code, `webhook signature rejected: ${message}`);
}

/** Checks a delivery's signature on its raw body; answers its `webhook-id`, or throws EdgeError. */
export type SignatureCheck = (headers: Headers, body: Uint8Array) => Promise<string>;

/** The headers a Standard Webhooks check needs, checked as trip-events checks them. */
export function signedHeaders(headers: Headers): { id: string; timestamp: string; list: string } {
  const list = headers.get("webhook-signature");
  if (list === null) {
    throw signatureError("missing_signature_header", "the webhook-signature header is missing");
  }
  const id = headers.get("webhook-id")?.trim();
  if (!id) throw signatureError("missing_signature_header", "the webhook-id header is missing");
  if (id.includes(".")) {
    throw signatureError("invalid_signature_header", "the webhook-id header is malformed");
  }
  const timestamp = headers.get("webhook-timestamp")?.trim();
  if (!timestamp) {
    throw signatureError("missing_signature_header", "the webhook-timestamp header is missing");
  }
  if (!/^[0-9]+$/.test(timestamp)) {
    throw signatureError("invalid_signature_header", "the webhook-timestamp header is malformed");
  }
  const age = Math.floor(Date.now() / 1000) - Number(timestamp);
  if (age > TOLERANCE_SECONDS) {
    throw signatureError("timestamp_too_old", `webhook-timestamp is ${age} s old`);
  }
  if (-age > TOLERANCE_SECONDS) {
    throw signatureError("timestamp_in_future", `webhook-timestamp is ${-age} s in the future`);
  }
  return { id, timestamp, list };
}

/** The `WEBHOOK_SECRET` keys: one or more space-separated `whsec_<base64>`. */
export function secretKeys(text: string | undefined): Uint8Array<ArrayBuffer>[] {
  const keys = (text ?? "").split(/\s+/).filter(Boolean).map((secret) =>
    Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0))
  );
  if (keys.length === 0) throw new Error("WEBHOOK_SECRET is not set");
  return keys;
}

function json(status: number, value: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

async function readBody(request: Request): Promise<Uint8Array> {
  const length = Number(request.headers.get("content-length") ?? 0);
  if (length > MAX_BODY_BYTES) throw new EdgeError(413, "payload_too_large", "body over 1 MiB");
  const body = new Uint8Array(await request.arrayBuffer());
  if (body.length > MAX_BODY_BYTES) {
    throw new EdgeError(413, "payload_too_large", "body over 1 MiB");
  }
  return body;
}

type Log = { event: string | null; webhook_id: string | null };

async function route(request: Request, path: string, check: SignatureCheck, log: Log) {
  const isHealth = path.replace(/\/+$/, "").endsWith("/health");
  if (request.method === "OPTIONS") return new Response(null, { status: 204 });
  if (isHealth) {
    if (request.method !== "GET" && request.method !== "HEAD") {
      throw new EdgeError(405, "method_not_allowed", "use GET, OPTIONS");
    }
    return json(200, { status: "healthy", function: FUNCTION, checks: {} });
  }
  if (request.method !== "POST") throw new EdgeError(405, "method_not_allowed", "use POST");
  const body = await readBody(request);
  log.webhook_id = await check(request.headers, body);
  let payload;
  try {
    payload = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new EdgeError(400, "invalid_json", String(error));
  }
  const event = payload?.event ?? request.headers.get("x-webhook-event");
  if (typeof event !== "string" || !event) {
    throw new EdgeError(400, "missing_field", "the payload has no event");
  }
  log.event = event;
  if (event !== "test.webhook") {
    throw new EdgeError(422, "unsupported_event", `${FUNCTION} does not handle ${event}`);
  }
  return json(200, { ok: true, event, webhook_id: log.webhook_id, function: FUNCTION });
}

/** Serves the function on PORT with one signature check. */
export function serveFunction(check: SignatureCheck) {
  const port = Number(Deno.env.get("PORT") ?? 8000);
  Deno.serve({ hostname: "127.0.0.1", port }, async (request) => {
    const started = performance.now();
    const requestId = crypto.randomUUID().slice(0, 18).replace("-", "");
    const path = new URL(request.url).pathname;
    const log: Log = { event: null, webhook_id: null };
    let response: Response;
    let failure: EdgeError | undefined;
    try {
      response = await route(request, path, check, log);
    } catch (error) {
      failure = error instanceof EdgeError
        ? error
        : new EdgeError(500, "internal_error", "an internal error occurred");
      response = json(failure.status, { error: { code: failure.code, message: failure.message } });
    }
    for (const [name, value] of Object.entries(CORS_HEADERS)) response.headers.set(name, value);
    response.headers.set("x-request-id", requestId);
    console.log(JSON.stringify({
      level: failure ? (failure.status >= 500 ? "error" : "warn") : "info",
      function: FUNCTION,
      request_id: requestId,
      method: request.method,
      path,
      ...log,
      status: response.status,
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
      ...(failure ? { error_code: failure.code, error: failure.message } : {}),
    }));
    return response;
  });
}
