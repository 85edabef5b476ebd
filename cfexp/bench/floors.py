"""`make bench`'s floors part: cfexp's ials, ease and bsvdpp beside the reference code at the same settings, each
fitted on train + validation of the default protocol and scored once on its test split (the lesson's 20%) by
cfexp's ranking pass, so that only the model differs."""

from __future__ import annotations

import statistics
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cfexp.config.experiment import RunConfig
from cfexp.data import ratings as data
from cfexp.metrics.ranking import Protocol, evaluate
from cfexp.variants import runner

REPEATS = 3  # fits per timing (the median is reported)
IALS = {"n_factors": 64, "reg": 0.01, "alpha": 1.0, "positives": 4.0, "epochs": 15, "cg_steps": 3}
EASE_L2 = 200.0
BAYES = [{"n_factors": 13, "noise_precision": 1.612}, {"n_factors": 20, "noise_precision": 2.0}]


def holdout_tensors(device: str):
    """Train + validation as the part fitted, test as the part scored."""
    ratings = data.load_ratings("ml-latest-small")
    split = data.split_rows(len(ratings.frame), 0.1, 0.2, 42)
    scored = data.Split(split.refit_rows(), split.test, np.array([], dtype=np.int64))
    return ratings, runner.to_device(ratings, scored, device, Protocol())


def _fit(run: RunConfig, tensors) -> tuple[nn.Module, dict, float]:
    seconds, model, result = [], None, None
    for _ in range(REPEATS):
        model, result = runner.fit_run(runner.resolved(run, tensors), tensors)
        seconds.append(sum(h["train_seconds"] for h in result.history))
    return model, result, statistics.median(seconds)


def measure_ials(device: str) -> dict:
    """cfexp's ials against implicit's AlternatingLeastSquares: same factors, λ (constant: ν = 0), confidences
    1 + α on positives (given to implicit as its matrix, with its alpha at 1), iterations and CG steps."""
    from implicit.cpu.als import AlternatingLeastSquares

    ratings, tensors = holdout_tensors(device)
    s = IALS
    options = {"reg": s["reg"], "alpha": s["alpha"], "positives": s["positives"], "reg_exponent": 0.0}
    options["cg_steps"] = s["cg_steps"]
    run = RunConfig(
        name="ials", variant="ials", n_factors=s["n_factors"], options=options, phases=((s["epochs"], 1.0),)
    )
    _, result, ours = _fit(run, tensors)
    train = tensors.train
    keep = (train.ratings >= s["positives"]).cpu().numpy()
    users, movies = train.users.cpu().numpy()[keep], train.movies.cpu().numpy()[keep]
    confidence = np.full(len(users), 1.0 + s["alpha"], np.float32)
    matrix = sp.csr_matrix((confidence, (users, movies)), shape=(ratings.n_users, ratings.n_movies))
    times = []
    for seed in range(REPEATS):
        reference = AlternatingLeastSquares(
            factors=s["n_factors"], regularization=s["reg"], alpha=1.0, iterations=s["epochs"], random_state=seed,
        )  # fmt: skip
        reference.cg_steps = s["cg_steps"]  # an attribute, not a constructor argument, in implicit 0.7
        started = time.perf_counter()
        reference.fit(matrix, show_progress=False)
        times.append(time.perf_counter() - started)
    return {
        "settings": s,
        "cfexp": {"ndcg_at_10": result.ranking["ndcg_at_10"], "seconds": ours},
        "implicit": {"ndcg_at_10": _ndcg(reference.user_factors @ reference.item_factors.T, tensors),
                     "seconds": statistics.median(times)},
    }  # fmt: skip


def measure_ease(device: str) -> dict:
    """cfexp's ease against a plain numpy/scipy EASE in float64 (an explicit inverse of XᵀX + λI), same λ."""
    ratings, tensors = holdout_tensors(device)
    found = {}
    for positives in (0.0, 4.0):
        run = RunConfig(name="ease", variant="ease", options={"l2": EASE_L2, "positives": positives})
        _, result, ours = _fit(run, tensors)
        train = tensors.train
        keep = (train.ratings >= positives).cpu().numpy()
        x = sp.csr_matrix(
            (np.ones(int(keep.sum())), (train.users.cpu().numpy()[keep], train.movies.cpu().numpy()[keep])),
            shape=(ratings.n_users, ratings.n_movies),
        )
        started = time.perf_counter()
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += EASE_L2
        inverse = np.linalg.inv(gram)
        weights = inverse / -np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        seconds = time.perf_counter() - started
        found["every rating" if positives == 0 else f"ratings ≥ {positives:g}"] = {
            "cfexp": {"ndcg_at_10": result.ranking["ndcg_at_10"], "seconds": ours},
            "numpy": {"ndcg_at_10": _ndcg((x @ weights).astype(np.float32), tensors), "seconds": seconds},
        }
    return {"l2": EASE_L2, "results": found}


# bfm's configurations beside the two classic variants: users and movies (bpmf), with the implicit group (bsvdpp),
# and the default sweep's three groups
BFM = {"bfm-bpmf": [], "bfm-bsvdpp": ["implicit"], "bfm": ["implicit", "flipped", "time"]}


def measure_bayes(device: str) -> dict:
    """bsvdpp beside bpmf, and bfm in the configurations that are each and with all its groups; same rank, noise
    precision, 60 sweeps and burn-in, test MSE."""
    _, tensors = holdout_tensors(device)
    rows = []
    for point in BAYES:
        row = dict(point)
        for label in ("bpmf", "bsvdpp", *BFM):
            variant = "bfm" if label in BFM else label
            options = {"noise_precision": point["noise_precision"]}
            if label in BFM:
                options["features"] = BFM[label]
            run = RunConfig(
                name=variant, variant=variant, n_factors=point["n_factors"], init="normal(0, 0.3)",
                y_range=(0.5, 5.0), options=options, phases=((60, 1.0),),
            )  # fmt: skip
            started = time.perf_counter()
            _, result = runner.fit_run(runner.resolved(run, tensors), tensors)
            row[label] = {"test_mse": result.history[-1]["val_loss"], "seconds": time.perf_counter() - started}
        rows.append(row)
    return {"rows": rows}


class _Scores(nn.Module):
    """A users × movies score table as a model for cfexp's ranking pass."""

    def __init__(self, table: np.ndarray):
        super().__init__()
        self.table = torch.as_tensor(np.asarray(table, np.float32))

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.table[users.cpu()][:, movies.cpu()].to(users.device)


def _ndcg(table: np.ndarray, tensors) -> float:
    return evaluate(_Scores(table), tensors.ranking)["ndcg_at_10"]


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def floors_section(r: dict) -> list[str]:
    lines = ["## make bench: the floors beside their reference code", ""]
    lines += [
        "Each model is fitted on train + validation of the default protocol and scored once on its test split (the "
        "lesson's 20%) by cfexp's ranking pass (relevant: a test rating ≥ 4; candidates: movies seen in fitting "
        "that the user did not rate there; NDCG@10). Fit seconds are the median of 3 fits, ranking excluded.",
        "",
    ]
    ials = r.get("floors-ials", {})
    if "cfexp" in ials:
        s = ials["settings"]
        ratio = ials["cfexp"]["seconds"] / ials["implicit"]["seconds"]
        gap = abs(ials["cfexp"]["ndcg_at_10"] - ials["implicit"]["ndcg_at_10"])
        lines += [
            f"### iALS: {s['n_factors']} factors, λ {s['reg']} (constant), confidence 1 + {s['alpha']:g} on ratings ≥ "
            f"{s['positives']:g}, {s['epochs']} epochs of {s['cg_steps']} CG steps",
            "",
            "| | NDCG@10 | fit seconds |",
            "|---|---|---|",
            f"| cfexp ials | {_f(ials['cfexp']['ndcg_at_10'])} | {_f(ials['cfexp']['seconds'], 3)} |",
            f"| implicit ALS {_version('implicit')} | {_f(ials['implicit']['ndcg_at_10'])} | "
            f"{_f(ials['implicit']['seconds'], 3)} |",
            "",
            f"NDCG gap {gap:.4f} (target ≤ 0.005), time {ratio:.2f}× implicit's (target ≤ 2×): "
            f"{'met' if gap <= 0.005 and ratio <= 2 else 'not met'}.",
            "",
        ]
    ease = r.get("floors-ease", {})
    if "results" in ease:
        lines += [
            f"### EASE, λ {ease['l2']:g}",
            "",
            "| positives | cfexp NDCG@10 | numpy NDCG@10 | cfexp s | numpy s |",
        ]
        lines += ["|---|---|---|---|---|"]
        gaps = []
        for name, pair in ease["results"].items():
            gaps.append(abs(pair["cfexp"]["ndcg_at_10"] - pair["numpy"]["ndcg_at_10"]))
            lines.append(
                f"| {name} | {_f(pair['cfexp']['ndcg_at_10'])} | {_f(pair['numpy']['ndcg_at_10'])} | "
                f"{_f(pair['cfexp']['seconds'], 2)} | {_f(pair['numpy']['seconds'], 2)} |"
            )
        verdict = "met" if max(gaps) <= 0.002 else "not met"
        lines += ["", f"Largest NDCG gap {max(gaps):.4f} (target ≤ 0.002): {verdict}.", ""]
    bayes = r.get("floors-bayes", {})
    if "rows" in bayes:
        lines += ["### The Bayesian factorization machines (60 sweeps, burn-in 4)", ""]
        lines += [
            "bfm with users and movies only, and with the implicit group, beside bpmf and bsvdpp at the same settings "
            "(the same sampler, so the same chain); then bfm with the implicit, flipped and time groups (20 bins).",
            "",
            "| rank | noise precision | bpmf | bfm, users + movies | bsvdpp | bfm + implicit | bfm, all groups "
            "| bpmf s | bsvdpp s | bfm (all) s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in bayes["rows"]:
            mse = [_f(row.get(k, {}).get("test_mse")) for k in ("bpmf", "bfm-bpmf", "bsvdpp", "bfm-bsvdpp", "bfm")]
            seconds = [_f(row.get(k, {}).get("seconds"), 2) for k in ("bpmf", "bsvdpp", "bfm")]
            lines.append(f"| {row['n_factors']} | {row['noise_precision']:g} | " + " | ".join(mse + seconds) + " |")
        pairs = [("bpmf", "bfm-bpmf"), ("bsvdpp", "bfm-bsvdpp")]
        gaps = [abs(row[a]["test_mse"] - row[b]["test_mse"]) for row in bayes["rows"] for a, b in pairs if b in row]
        if gaps:
            verdict = "met" if max(gaps) <= 0.001 else "**not met**"
            lines += ["", f"Test MSE on the lesson's 20%. Largest gap of bfm's configurations to bpmf and bsvdpp: "
                      f"{max(gaps):.4f} (target ≤ 0.001: {verdict})."]  # fmt: skip
        lines.append("")
    return lines


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
