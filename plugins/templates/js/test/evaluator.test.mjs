import assert from "node:assert/strict";
import { test } from "node:test";

import { evaluateText } from "../src/evaluator.js";

test("scores length and flags a missing title", () => {
  const evaluation = evaluateText("fifty words or so", 8);
  assert.equal(evaluation.scores[0].value, 50);
  assert.equal(evaluation.findings[0].code, "missing-title");
  assert.deepEqual(evaluateText("# Title\ntext", 8).findings, []);
});
