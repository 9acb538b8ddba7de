// The ceiling of B1: trip-events' HTTP contract (bench/peers/contract.ts) with no signature check
// at all. Every function and peer does this work and more, so none can go faster; how close each
// gets says what its signature check and its seam cost. Not a function anyone should deploy.
import { serveFunction } from "./contract.ts";

if (import.meta.main) {
  serveFunction((headers) => Promise.resolve(headers.get("webhook-id") ?? ""));
}
