// The WebCrypto peer as a real TypeScript trip-events starts: with a supabase-js client created
// at start, for the cold start of scripts/bench B3.
import { createClient } from "@supabase/supabase-js";
import { serveFunction } from "./contract.ts";
import { webCryptoCheck } from "./webcrypto.ts";

export const supabase = createClient(
  Deno.env.get("SUPABASE_URL") ?? "",
  Deno.env.get("SUPABASE_SERVICE_ROLE_KEY") ?? "",
  { auth: { persistSession: false } },
);

serveFunction(await webCryptoCheck(Deno.env.get("WEBHOOK_SECRET")));
