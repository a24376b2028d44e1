// `faults` in JavaScript: a test evaluator for what an author meets. The
// document's first line says what it does: `raise` (a helper throws an
// Error, reported with its stack), `floats` (data with floats),
// `init-module` / `init-call` (a table built once at the module's top level,
// which runs when the component is built, or on every call), anything else
// (`data` is the document's content, exactly as received).
import { evaluation, reported, score } from "./docket.js";

/** The primes below 200,000: a table an evaluator would load once. */
function primes() {
  const limit = 200000;
  const composite = new Uint8Array(limit);
  const found = [];
  for (let n = 2; n < limit; n++) {
    if (composite[n]) continue;
    found.push(n);
    for (let m = n * n; m < limit; m += n) composite[m] = 1;
  }
  return found;
}

// Runs once, when the component is built: every document starts from the
// snapshot taken after it.
const PRIMES = primes();

function checked(title) {
  throw new RangeError(`the helper refused ${JSON.stringify(title)}`);
}

export function evaluateText(title, text) {
  const mode = text.split("\n", 1)[0].trim();
  if (mode === "raise") return evaluation({ labels: [checked(title)] });
  if (mode === "init-module") return evaluation({ data: { primes: PRIMES.length } });
  if (mode === "init-call") return evaluation({ data: { primes: primes().length } });
  if (mode === "floats") {
    return evaluation({
      scores: [score("third", 1 / 3, 1)],
      data: { tiny: 1e-7, huge: 1e22, sum: 0.1 + 0.2, fifteen: 15.000000000000005 },
    });
  }
  return evaluation({ data: { content: text } });
}

export const evaluate = reported((document, _config) => evaluateText(document.title, document.content));

export function mergeChunks(_chunks) {
  return undefined;
}

export function summarize(_evaluations) {
  return undefined;
}

export function combineSummaries(_partials) {
  return undefined;
}
