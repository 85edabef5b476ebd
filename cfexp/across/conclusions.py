"""Every conclusion a single setting's report states, counted across the settings: the champion (lowest validation
MSE), the best ranker (highest test NDCG@k), "A beats B" for the first setting's leaders, and the order of the
lesson's models by test MSE. Each is read off each setting's own table, and said with the number of settings where
it holds and where it is significant (a paired test over that setting's test users, cfexp.across.paired).
Sentences are built from these counts, never written by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from cfexp.across import paired
from cfexp.variants.registry import get_variant

LESSON_MODULE = "cfexp.variants.lesson"  # the lesson's models are the variants declared there


@dataclass
class Finding:
    """One conclusion and where it holds: each setting's label → (holds, significant or None where untested)."""

    statement: str
    per_setting: dict[str, tuple[bool, bool | None]] = field(default_factory=dict)

    @property
    def holds(self) -> list[str]:
        return [s for s, (held, _) in self.per_setting.items() if held]

    @property
    def significant(self) -> list[str]:
        return [s for s, (held, sig) in self.per_setting.items() if held and sig]

    @property
    def tested(self) -> bool:
        return any(sig is not None for _, sig in self.per_setting.values())

    def sentence(self) -> str:
        n, k = len(self.per_setting), len(self.holds)
        where = "all" if k == n else ("none" if k == 0 else ", ".join(self.holds))
        text = f"{self.statement}: holds in {k} of {n} settings ({where})"
        if self.tested:
            text += f", significant in {len(self.significant)}"
        return text + "."


def leaders(frame: pd.DataFrame, setting: str, figure: str, lower_is_better: bool) -> list[str]:
    """The studies of one setting by a figure, best first (those that have it)."""
    rows = frame[(frame.setting == setting) & frame[figure].notna()]
    return rows.sort_values(figure, ascending=lower_is_better, kind="stable").study.tolist()


def findings(results, frame: pd.DataFrame, k: int) -> list[Finding]:
    settings = [r.label for r in results]
    by_label = {r.label: r for r in results}
    champions = {s: leaders(frame, s, "val_mse", True) for s in settings}
    rankers = {s: leaders(frame, s, "test_ndcg", False) for s in settings}
    found = _firsts(
        champions, "is the champion (lowest validation MSE)", lambda s, a, b: paired.mse_test(by_label[s], a, b)
    )
    found += _firsts(rankers, f"ranks best (test NDCG@{k})", lambda s, a, b: paired.ndcg_test(by_label[s], a, b, k))
    first = settings[0]
    if len(champions[first]) > 1:
        found.append(_beats(by_label, frame, champions[first][:2], "test_mse", True, "test MSE", k))
    if len(rankers[first]) > 1:
        found.append(_beats(by_label, frame, rankers[first][:2], "test_ndcg", False, f"test NDCG@{k}", k))
    order = _lesson_order(frame, first)
    if len(order) > 1:
        finding = Finding(f"the lesson's models order by test MSE as {' < '.join(f'`{s}`' for s in order)}")
        for s in settings:
            finding.per_setting[s] = (_lesson_order(frame, s) == order, None)
        found.append(finding)
    return found


def _firsts(ordered: dict[str, list[str]], words: str, test) -> list[Finding]:
    """For each study that leads some setting: where it leads, and where its lead over the runner-up is significant
    (`test(setting, leader, runner_up)` gives the lead and its p)."""
    found = []
    for leader in dict.fromkeys(order[0] for order in ordered.values() if order):
        finding = Finding(f"`{leader}` {words}")
        for s, order in ordered.items():
            held, significant = bool(order) and order[0] == leader, None
            if held and len(order) > 1:
                lead, p = test(s, leader, order[1])
                significant = lead > 0 and p < paired.ALPHA
            finding.per_setting[s] = (held, significant)
        found.append(finding)
    return found


def _beats(by_label, frame, pair: list[str], figure: str, lower: bool, words: str, k: int) -> Finding:
    a, b = pair
    finding = Finding(f"`{a}` beats `{b}` on {words}")
    for s, result in by_label.items():
        rows = frame[frame.setting == s].set_index("study")[figure]
        if a not in rows or b not in rows or math.isnan(rows[a]) or math.isnan(rows[b]):
            finding.per_setting[s] = (False, None)
            continue
        held = rows[a] < rows[b] if lower else rows[a] > rows[b]
        _, p = paired.mse_test(result, a, b) if figure == "test_mse" else paired.ndcg_test(result, a, b, k)
        finding.per_setting[s] = (bool(held), bool(held and p < paired.ALPHA))
    return finding


def _lesson_order(frame: pd.DataFrame, setting: str) -> list[str]:
    rows = frame[(frame.setting == setting) & frame.test_mse.notna()]
    lesson = rows[[get_variant(v).build.__module__ == LESSON_MODULE for v in rows.variant]]
    return lesson.sort_values("test_mse", kind="stable").study.tolist()
