// `{{name}}`: a docket evaluator. It scores how long a document is and
// flags documents without a title line. Replace `evaluate` with your own
// rules; keep it deterministic (no clocks, randomness or network -- the
// sandbox has none).
import { evaluation, invalidConfig, parseConfig, reported, roundHalfAway, score } from "./docket.js";

export function evaluateText(text, targetWords) {
  const words = text.split(/\s+/).filter((w) => w.length > 0).length;
  const findings = [];
  if (!text.trimStart().startsWith("#")) {
    findings.push({
      code: "missing-title",
      severity: "warning",
      message: "the document does not start with a '# Title' line",
      evidence: undefined,
    });
  }
  const value = roundHalfAway(Math.min((words / targetWords) * 100, 100));
  return evaluation({ scores: [score("length", value, 100)], findings, data: { words } });
}

// `reported`: an uncaught error becomes an `internal` failure with its
// message and stack, instead of a trap that says nothing.
export const evaluate = reported((document, config) => {
  const target = parseConfig(config).target_words ?? 500;
  if (typeof target !== "number" || target <= 0) {
    throw invalidConfig("target_words must be a positive number");
  }
  return evaluateText(document.content, target);
});

export function mergeChunks(_chunks) {
  return undefined;
}

export function summarize(_evaluations) {
  return undefined;
}

export function combineSummaries(_partials) {
  return undefined;
}
