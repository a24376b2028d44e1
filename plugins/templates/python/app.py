"""`{{name}}`: a docket evaluator. It scores how long a document is and
flags documents without a title line. Replace `evaluate` with your own
rules; keep it deterministic (no clocks, randomness or network -- the
sandbox has none)."""

from typing import List, Optional

import wit_world
from wit_world import Document, Evaluation, Severity

import docket


def evaluate_text(text: str, target_words: float) -> Evaluation:
    words = len(text.split())
    findings = []
    if not text.lstrip().startswith("#"):
        findings.append(
            docket.finding(
                "missing-title", Severity.WARNING, "the document does not start with a '# Title' line"
            )
        )
    value = docket.round_half_away(min(words / target_words * 100.0, 100.0))
    return docket.evaluation(
        scores=[docket.score("length", value, 100.0)], findings=findings, data={"words": words}
    )


@docket.evaluator
class WitWorld(wit_world.WitWorld):
    def evaluate(self, document: Document, config: str) -> Evaluation:
        target = docket.parse_config(config).get("target_words", 500)
        if not isinstance(target, (int, float)) or target <= 0:
            raise docket.invalid_config("target_words must be a positive number")
        return evaluate_text(document.content, float(target))

    def merge_chunks(self, chunks: List[Evaluation]) -> Optional[Evaluation]:
        return None

    def summarize(self, evaluations: List[Evaluation]) -> Optional[str]:
        return None

    def combine_summaries(self, partials: List[str]) -> Optional[str]:
        return None
