// The baseline of B1 and B3 in scripts/bench: a bare Deno.serve hello-world on PORT.
Deno.serve(
  { hostname: "127.0.0.1", port: Number(Deno.env.get("PORT") ?? 8000) },
  () => new Response("Hello, world"),
);
