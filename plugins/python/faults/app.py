"""`faults` in Python: a test evaluator for what an author meets. The
document's first line says what it does:

- `raise`: a helper raises ValueError (reported with its traceback);
- `most-common`: `collections.Counter.most_common`, whose `heapq` the
  standard library imports lazily (the SDK imported it at build time);
- `late-import`: imports a module while evaluating (refused with a reason);
- `floats`: `data` with floats that print differently in other languages;
- `init-module` / `init-call`: 100 case-insensitive patterns, compiled once
  at the module's top level (run when the component is built, and kept in
  its snapshot) or on every call;
- anything else: `data` is the document's content, exactly as received.
"""

import collections
import re
from typing import List

import wit_world
from wit_world import Document, Evaluation

import docket


def patterns(tag: str) -> List[str]:
    """100 patterns like a rule set's; `tag` keeps two sets apart in `re`'s
    own cache."""
    return [rf"\b(?:rule{n}|term{n}[a-z]*|{tag}{n})\b" for n in range(100)]


# Runs once, when the component is built: every document starts from the
# snapshot taken after it.
RULES = [re.compile(p, re.IGNORECASE) for p in patterns("module")]


def matches(rules, text: str) -> int:
    return sum(1 for rule in rules if rule.search(text))


def checked(title: str) -> str:
    raise ValueError(f"the helper refused {title!r}")


def evaluate_text(title: str, text: str) -> Evaluation:
    mode = text.split("\n", 1)[0].strip()
    if mode == "raise":
        return docket.evaluation(labels=[checked(title)])
    if mode == "most-common":
        common = collections.Counter(text.split()).most_common(2)
        return docket.evaluation(data={"most_common": [[w, n] for w, n in common]})
    if mode == "late-import":
        import colorsys  # noqa: F401  on purpose: not imported at build time

        return docket.evaluation()
    if mode == "init-module":
        return docket.evaluation(data={"matched": matches(RULES, text)})
    if mode == "init-call":
        rules = [re.compile(p, re.IGNORECASE) for p in patterns("call")]
        return docket.evaluation(data={"matched": matches(rules, text)})
    if mode == "floats":
        return docket.evaluation(
            scores=[docket.score("third", 1 / 3, 1)],
            data={"tiny": 1e-07, "huge": 1e22, "sum": 0.1 + 0.2, "fifteen": 15.000000000000005},
        )
    return docket.evaluation(data={"content": text})


@docket.evaluator
class WitWorld(wit_world.WitWorld):
    # merge_chunks, summarize and combine_summaries: the decorator's
    # defaults (None).
    def evaluate(self, document: Document, config: str) -> Evaluation:
        return evaluate_text(document.title, document.content)
