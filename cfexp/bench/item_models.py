"""`make bench`'s floors part, continued: the models past and beside EASE (DLAE and EDLAE, ItemKNN) beside plain
numpy and scipy code at the same settings, each fitted on train + validation of the default protocol and scored
once on its test split by cfexp's ranking pass, so that only the model differs."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from cfexp.bench.floors import _f, _fit, _ndcg, holdout_tensors
from cfexp.config.experiment import RunConfig

DLAE = {"l2": 200.0, "dropout": 0.25, "positives": 4.0}
ITEMKNN = {"neighbours": 200, "shrink": 10.0, "positives": 4.0}


def _positives(tensors, n_users: int, n_movies: int, threshold: float) -> sp.csr_matrix:
    train = tensors.train
    keep = (train.ratings >= threshold).cpu().numpy()
    users, movies = train.users.cpu().numpy()[keep], train.movies.cpu().numpy()[keep]
    return sp.csr_matrix((np.ones(len(users)), (users, movies)), shape=(n_users, n_movies))


def measure_dlae(device: str) -> dict:
    """cfexp's dlae (and with EASE's zero diagonal, EDLAE) against numpy's explicit inverse of XᵀX + Λ in float64."""
    ratings, tensors = holdout_tensors(device)
    x = _positives(tensors, ratings.n_users, ratings.n_movies, DLAE["positives"])
    found = {}
    for zero_diagonal, name in ((False, "DLAE"), (True, "EDLAE")):
        run = RunConfig(name="dlae", variant="dlae", options={**DLAE, "zero_diagonal": zero_diagonal})
        _, result, ours = _fit(run, tensors)
        started = time.perf_counter()
        gram = (x.T @ x).toarray()
        lam = DLAE["dropout"] / (1 - DLAE["dropout"]) * np.diag(gram) + DLAE["l2"]
        precision = np.linalg.inv(gram + np.diag(lam))
        if zero_diagonal:
            weights = precision / -np.diag(precision)
            np.fill_diagonal(weights, 0.0)
        else:
            weights = np.eye(len(lam)) - precision * lam
        seconds = time.perf_counter() - started
        found[name] = {
            "cfexp": {"ndcg_at_10": result.ranking["ndcg_at_10"], "seconds": ours},
            "numpy": {"ndcg_at_10": _ndcg((x @ weights).astype(np.float32), tensors), "seconds": seconds},
        }
    return {"settings": DLAE, "results": found}


def measure_itemknn(device: str) -> dict:
    """cfexp's itemknn against scipy: shrunk cosine from the sparse co-occurrences, each column's nearest kept."""
    ratings, tensors = holdout_tensors(device)
    x = _positives(tensors, ratings.n_users, ratings.n_movies, ITEMKNN["positives"])
    run = RunConfig(name="itemknn", variant="itemknn", options=ITEMKNN)
    _, result, ours = _fit(run, tensors)
    started = time.perf_counter()
    gram = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(gram))
    similarity = gram / (np.outer(norms, norms) + ITEMKNN["shrink"])
    np.fill_diagonal(similarity, 0.0)
    order = np.argsort(-similarity, axis=0, kind="stable")[: ITEMKNN["neighbours"]]
    weights = np.zeros_like(similarity)
    np.put_along_axis(weights, order, np.take_along_axis(similarity, order, axis=0), axis=0)
    seconds = time.perf_counter() - started
    return {
        "settings": ITEMKNN,
        "cfexp": {"ndcg_at_10": result.ranking["ndcg_at_10"], "seconds": ours},
        "scipy": {"ndcg_at_10": _ndcg((x @ weights).astype(np.float32), tensors), "seconds": seconds},
    }


def item_models_section(r: dict) -> list[str]:
    lines = []
    dlae = r.get("floors-dlae", {})
    if "results" in dlae:
        s = dlae["settings"]
        lines += [
            f"### DLAE and EDLAE (Steck 2020): λ {s['l2']:g}, dropout p {s['dropout']:g}, ratings ≥ {s['positives']:g}",
            "",
            "| model | cfexp NDCG@10 | numpy NDCG@10 | cfexp s | numpy s |",
            "|---|---|---|---|---|",
        ]
        gaps = []
        for name, pair in dlae["results"].items():
            gaps.append(abs(pair["cfexp"]["ndcg_at_10"] - pair["numpy"]["ndcg_at_10"]))
            lines.append(
                f"| {name} | {_f(pair['cfexp']['ndcg_at_10'])} | {_f(pair['numpy']['ndcg_at_10'])} | "
                f"{_f(pair['cfexp']['seconds'], 2)} | {_f(pair['numpy']['seconds'], 2)} |"
            )
        lines += ["", f"Largest NDCG gap {max(gaps):.4f} (target: identical, ≤ 0.0005).", ""]
    knn = r.get("floors-itemknn", {})
    if "cfexp" in knn:
        s = knn["settings"]
        lines += [
            f"### ItemKNN: cosine with shrink {s['shrink']:g}, {s['neighbours']} neighbours, "
            f"ratings ≥ {s['positives']:g}",
            "",
            "| | NDCG@10 | fit seconds |",
            "|---|---|---|",
            f"| cfexp itemknn | {_f(knn['cfexp']['ndcg_at_10'])} | {_f(knn['cfexp']['seconds'], 3)} |",
            f"| scipy and numpy | {_f(knn['scipy']['ndcg_at_10'])} | {_f(knn['scipy']['seconds'], 3)} |",
            "",
        ]
    return lines
