// `faults` in JavaScript: a test evaluator for what an author meets. The
// document's first line says what it does: `raise` (a helper throws an
// Error, reported with its stack), `floats` (data with floats), anything
// else (`data` is the document's content, exactly as received).
import { evaluation, reported, score } from "./docket.js";

function checked(title) {
  throw new RangeError(`the helper refused ${JSON.stringify(title)}`);
}

export function evaluateText(title, text) {
  const mode = text.split("\n", 1)[0].trim();
  if (mode === "raise") return evaluation({ labels: [checked(title)] });
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
