// `wordstats` in JavaScript: word count, lexical diversity and the most
// frequent terms -- the same evaluation as the Rust example, to the byte.
import {
  codePoints,
  compareCodePoints,
  evaluation,
  lowercase,
  reported,
  roundHalfAway,
  score,
  words,
} from "./docket.js";

const TOP_TERMS = 10;

export function evaluateText(text) {
  const all = words(lowercase(text));
  const counts = new Map();
  for (const word of all) counts.set(word, (counts.get(word) ?? 0) + 1);
  const terms = [...counts]
    .filter(([term]) => term.length >= 4 && [...term].length >= 4)
    .sort((a, b) => b[1] - a[1] || compareCodePoints(a[0], b[0]));
  const diversity = all.length === 0 ? 0 : roundHalfAway((counts.size * 10000) / all.length) / 100;
  const length = all.length < 200 ? "length:short" : all.length < 2000 ? "length:medium" : "length:long";
  return evaluation({
    scores: [score("lexical_diversity", diversity, 100)],
    labels: [length],
    data: {
      words: all.length,
      unique_words: counts.size,
      characters: codePoints(text),
      top_terms: terms.slice(0, TOP_TERMS).map(([term, count]) => ({ term, count })),
    },
  });
}

export const evaluate = reported((document, _config) => evaluateText(document.content));

export function mergeChunks(_chunks) {
  return undefined;
}

export function summarize(_evaluations) {
  return undefined;
}

export function combineSummaries(_partials) {
  return undefined;
}
