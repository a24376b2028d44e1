import unittest

from app import evaluate_text


class EvaluateText(unittest.TestCase):
    def test_scores_length_and_flags_a_missing_title(self):
        evaluation = evaluate_text("fifty words or so", 8.0)
        self.assertEqual(evaluation.scores[0].value, 50.0)
        self.assertEqual(evaluation.findings[0].code, "missing-title")
        self.assertEqual(evaluate_text("# Title\ntext", 8.0).findings, [])


if __name__ == "__main__":
    unittest.main()
