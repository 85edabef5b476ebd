"""BENCHMARKS.md's protocol table: each study's test figures under the three splits, and the conclusions read off
each sweep's own table, said to hold or change."""

from cfexp.bench.protocols import conclusions, protocols_section


def _sweep(champion: str, rows: dict[str, tuple[float | None, float]], wall: float = 60.0) -> dict:
    return {
        "wall": wall,
        "champion": f"variants/{champion}",
        "split": {"train": 80, "val": 10, "test": 10},
        "protocol": {"cold": {"test": {"rows": 3, "users": 1, "of_users": 4, "movies": 2, "of_movies": 6}}},
        "studies": [
            {"study": f"variants/{name}", "test_loss": mse, "test_ndcg_at_10": ndcg}
            for name, (mse, ndcg) in rows.items()
        ],
    }


RANDOM = _sweep("bpmf", {"bpmf": (0.73, 0.09), "dot": (1.15, 0.001), "dot_bias": (0.88, 0.08), "ease": (None, 0.30)})
TEMPORAL = _sweep("bpmf", {"bpmf": (1.03, 0.25), "dot": (9.5, 0.03), "dot_bias": (6.7, 0.18), "ease": (None, 0.08)})
USER_LAST = _sweep("nn", {"bpmf": (0.88, 0.02), "dot": (1.6, 0.002), "dot_bias": (1.1, 0.004), "ease": (None, 0.05)})


def test_conclusions_are_read_off_the_sweeps_table():
    found = conclusions(TEMPORAL)
    assert found == {
        "champion (lowest val MSE)": "bpmf",
        "best ranker (test NDCG@10)": "bpmf",
        "order of the lesson's models by test MSE": "dot_bias < dot",
    }


def test_the_table_sets_the_splits_side_by_side_and_says_what_changes():
    results = {"protocol": {"sweep": RANDOM}, "protocols": {"temporal": TEMPORAL, "user-last": USER_LAST}}
    text = "\n".join(protocols_section(results))
    assert "| study | random | temporal | user-last |" in text
    assert "| bpmf | 0.7300 / 0.0900 | 1.0300 / 0.2500 | 0.8800 / 0.0200 |" in text
    assert "| ease | - / 0.3000 | - / 0.0800 | - / 0.0500 |" in text
    assert "- The champion (lowest val MSE): changes under user-last." in text
    assert "- The best ranker (test NDCG@10): changes under temporal." in text
    assert "- The order of the lesson's models by test MSE: holds under all three." in text


def test_a_missing_sweep_says_so():
    text = "\n".join(protocols_section({"protocol": {"sweep": RANDOM}, "protocols": {"temporal": {"error": "boom"}}}))
    assert "Not measured: temporal: boom; user-last: no result." in text
