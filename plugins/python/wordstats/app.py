"""`wordstats` in Python: word count, lexical diversity and the most
frequent terms -- the same evaluation as the Rust example, to the byte."""

from typing import List, Optional

import wit_world
from wit_world import Document, Evaluation

import docket

TOP_TERMS = 10


def evaluate_text(text: str) -> Evaluation:
    counts: dict = {}
    words = docket.words(text.lower())
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    terms = sorted(
        ((term, n) for term, n in counts.items() if len(term) >= 4),
        key=lambda tn: (-tn[1], tn[0]),
    )
    diversity = (
        0.0 if not words else docket.round_half_away(len(counts) * 10000.0 / len(words)) / 100.0
    )
    length = (
        "length:short" if len(words) < 200 else "length:medium" if len(words) < 2000 else "length:long"
    )
    return docket.evaluation(
        scores=[docket.score("lexical_diversity", diversity, 100.0)],
        labels=[length],
        data={
            "words": len(words),
            "unique_words": len(counts),
            "characters": len(text),
            "top_terms": [{"term": t, "count": n} for t, n in terms[:TOP_TERMS]],
        },
    )


@docket.evaluator
class WitWorld(wit_world.WitWorld):
    def evaluate(self, document: Document, config: str) -> Evaluation:
        return evaluate_text(document.content)

    def merge_chunks(self, chunks: List[Evaluation]) -> Optional[Evaluation]:
        return None

    def summarize(self, evaluations: List[Evaluation]) -> Optional[str]:
        return None

    def combine_summaries(self, partials: List[str]) -> Optional[str]:
        return None
