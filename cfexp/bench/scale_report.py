"""The `make bench-scale` part of BENCHMARKS.md: 25M ratings, cfexp beside LensKit and Surprise, with the targets."""

from __future__ import annotations

from cfexp.bench.scale import BATCH, RANK, SHAPE


def _f(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(theirs: dict, key: str, seconds: float | None) -> str:
    if "error" in theirs or not theirs.get(key) or not seconds:
        return "-"
    return f"{theirs[key] / seconds:.1f}×"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _users(count) -> str:
    return "-" if count is None else f"{int(count):,}"


def scale_section(r: dict) -> list[str]:
    load, sgd, gibbs = r.get("scale-load", {}), r.get("scale-sgd", {}), r.get("scale-gibbs", {})
    lenskit, surprise = r.get("scale-lenskit", {}), r.get("scale-surprise", {})
    ials, implicit = r.get("scale-ials", {}), r.get("scale-implicit", {})
    written = r.get("scale-synth", {})
    how = (
        "reused from an earlier run"
        if written.get("reused")
        else (f"written in {_f(written.get('seconds'))} s at a peak RSS of {_f(written.get('peak_rss_mb'), 0)} MB")
    )
    lines = [
        f"## make bench-scale: 25M ratings (`cfexp synth --shape {SHAPE}`)",
        "",
        f"A synthetic file shaped like ml-25m ({load.get('ratings', 25_000_095):,} ratings, "
        f"{load.get('users', 162_541):,} users, {load.get('movies', 59_047):,} movies; `cfexp synth --shape {SHAPE}`, "
        f"seed 42; {_f(written.get('mb'), 0)} MB, {how}: streamed, never whole in memory), split the lesson's "
        "way (20% validation). Each row is its own process. cfexp's epoch is training "
        "only (the evaluation pass is its own row); the peers' rows use their own data loading, training and "
        f"prediction: LensKit 2025.8.1's BiasedMFScorer (ALS, rank {RANK}, regularization 0.1, one epoch, "
        "`lenskit.batch.predict`), Surprise's SVD at the fast recipe's rank (one epoch, `test`) and implicit's "
        "AlternatingLeastSquares (one iteration on the same positives and confidences as cfexp's iALS epoch).",
        "",
        "| step | cfexp | seconds | peak RSS (MB) | peer | peer seconds | ratio (peer ÷ cfexp) | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        _row(
            "load and encode",
            "`data.load_ratings`",
            load.get("load_encode_seconds"),
            load.get("peak_rss_mb"),
            "LensKit (pandas + `from_interactions_df`)",
            lenskit,
            "load_encode_seconds",
            _met(_ok(load, "load_encode_seconds", 60) and load.get("peak_rss_mb", 1e9) <= 4096) + " (≤ 60 s, ≤ 4 GB)",
        ),
        _row(
            f"SGD epoch, batch {BATCH:,}",
            f"fast recipe ({sgd.get('n_factors', '-')} factors, lazy SGD)",
            sgd.get("epoch_seconds"),
            sgd.get("peak_rss_mb"),
            "Surprise SVD, 1 epoch",
            surprise,
            "epoch_seconds",
            _met(_ok(sgd, "epoch_seconds", 15) and sgd.get("peak_rss_mb", 1e9) <= 8192) + " (≤ 15 s, ≤ 8 GB)",
        ),
        _row(
            f"Gibbs sweep, rank {RANK}",
            "bpmf",
            gibbs.get("epoch_seconds"),
            gibbs.get("peak_rss_mb"),
            f"LensKit ALS, 1 epoch, rank {RANK}",
            lenskit,
            "epoch_seconds",
            _met(_ok(gibbs, "epoch_seconds", 45) and gibbs.get("peak_rss_mb", 1e9) <= 8192) + " (≤ 45 s, ≤ 8 GB)",
        ),
        _row(
            f"iALS epoch, {ials.get('n_factors', '-')} factors, 3 CG steps",
            "ials (positives: ratings ≥ 4)",
            ials.get("epoch_seconds"),
            ials.get("peak_rss_mb"),
            "implicit ALS, 1 iteration, same settings",
            implicit,
            "epoch_seconds",
            "-",
        ),
        _row(
            f"evaluation pass ({sgd.get('val_rows', 0):,} val ratings)",
            f"rank-{RANK} bpmf model",
            gibbs.get("eval_seconds"),
            None,
            "LensKit `batch.predict`",
            lenskit,
            "eval_seconds",
            "-",
        ),
        _row(
            "evaluation pass",
            f"{sgd.get('n_factors', '-')}-factor SGD model",
            sgd.get("eval_seconds"),
            None,
            "Surprise `test`",
            surprise,
            "eval_seconds",
            "-",
        ),
        "",
        "Set-up outside the timed epoch (building the model, and for bpmf the sparse matrices of the ratings): "
        f"SGD {_f(sgd.get('setup_seconds'))} s, Gibbs {_f(gibbs.get('setup_seconds'))} s. "
        f"Validation MSE after that one epoch: cfexp SGD {_f(sgd.get('val_mse'), 4)}, bpmf "
        f"{_f(gibbs.get('val_mse'), 4)}, LensKit ALS {_f(lenskit.get('val_mse'), 4)}, Surprise SVD "
        f"{_f(surprise.get('val_mse'), 4)}. The peak RSS of each peer: LensKit {_f(lenskit.get('peak_rss_mb'), 0)} MB, "
        f"Surprise {_f(surprise.get('peak_rss_mb'), 0)} MB, implicit {_f(implicit.get('peak_rss_mb'), 0)} MB "
        f"(its CSR matrix built in {_f(implicit.get('setup_seconds'))} s before the timed iteration; ials's set-up "
        f"{_f(ials.get('setup_seconds'))} s).",
        "",
        "Full ranking of the final model at this size (every ranked user × every movie seen in training, in blocks "
        "of 16M scores, never the whole matrix; docs/evaluation.md), as every run does after its fit: "
        f"SGD model {_f(sgd.get('ranking_seconds'))} s, bpmf {_f(gibbs.get('ranking_seconds'))} s, over "
        f"{_users(sgd.get('ranked_users'))} users (NDCG@10 after one epoch: SGD {_f(sgd.get('ndcg_at_10'), 4)}, bpmf "
        f"{_f(gibbs.get('ndcg_at_10'), 4)}).",
        "",
        "The SGD epochs are not the same algorithm: Surprise's SVD steps one rating at a time in Cython, without "
        f"momentum; cfexp's epoch is SGD with momentum over {BATCH:,}-rating batches, which must read and write the "
        "state (parameters and momentum) of every row a batch touches, on this machine's two cores. cfexp's fused "
        f"CPU loops were loaded from numba's cache in {_f(sgd.get('kernel_load_seconds'), 2)} s before the epoch "
        "(compiling them the first time on a machine takes about 2 s).",
        "",
    ]
    failed = [f"{name}: {m['error']}" for name, m in r.items() if "error" in m]
    return lines + ([f"Failed measurements: {'; '.join(failed)}.", ""] if failed else [])


def _ok(m: dict, key: str, limit: float) -> bool:
    return "error" not in m and m.get(key) is not None and m[key] <= limit


def _row(step, ours, seconds, rss, peer, theirs, key, target) -> str:
    return (
        f"| {step} | {ours} | {_f(seconds)} | {_f(rss, 0)} | {peer} | {_f(theirs.get(key))} | "
        f"{_ratio(theirs, key, seconds)} | {target} |"
    )
