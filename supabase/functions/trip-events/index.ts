// Supabase Edge Function `trip-events`: the Rust module (wasm) does everything; this file configures
// it once with the environment and hands it each request. Build the module with scripts/build-wasm.
import { Handler, initSync } from "./wasm/trip_events.js";

initSync({
  module: await Deno.readFile(new URL("./wasm/trip_events_bg.wasm", import.meta.url)),
});

// A worker's environment is fixed for its life (new secrets start new workers): configure once.
const env = Deno.env.toObject();
const handler = new Handler(env);

// The edge runtime chooses where a worker listens itself; PORT serves the local stack and the tests,
// where the function listens on loopback only, behind the gateway.
Deno.serve(
  { hostname: "127.0.0.1", port: Number(env.PORT ?? 8000) },
  (request) => handler.handle(request),
);
