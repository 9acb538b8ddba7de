// Supabase Edge Function `trip-events`: the Rust module (wasm) does everything; this file only hands
// it each request with the environment. Build the module with scripts/build-wasm.
import { handle, initSync } from "./wasm/trip_events.js";

initSync({
  module: await Deno.readFile(new URL("./wasm/trip_events_bg.wasm", import.meta.url)),
});

// The edge runtime chooses the port itself; PORT serves the local stack and the tests.
Deno.serve(
  { port: Number(Deno.env.get("PORT") ?? 8000) },
  (request) => handle(request, Deno.env.toObject()),
);
