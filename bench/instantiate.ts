// B3 of scripts/bench: one function's wasm module compiled and instantiated by its wasm-bindgen
// glue (`initSync` on the module's bytes, as the shim does), in this fresh process so no compiled
// module is reused. Prints the milliseconds taken. Usage: deno run --allow-read instantiate.ts NAME
const name = Deno.args[0];
const crate = name.replaceAll("-", "_");
const wasm = new URL(`../supabase/functions/${name}/wasm/`, import.meta.url);
const glue = await import(new URL(`${crate}.js`, wasm).href);
const bytes = await Deno.readFile(new URL(`${crate}_bg.wasm`, wasm));
const started = performance.now();
glue.initSync({ module: bytes });
console.log(performance.now() - started);
