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
    sgd_ok = _ratio_at_least(surprise, sgd, 1.0) and sgd.get("peak_rss_mb", 1e9) <= 8192
    memory_limit = 1.2 * implicit.get("peak_rss_mb", 0)
    ials_ok = _ratio_at_least(implicit, ials, 1.0) and ials.get("peak_rss_mb", 1e9) <= memory_limit
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
            _met(sgd_ok) + " (≥ 1.0×, ≤ 8 GB)",
        ),
        _row(
            f"Gibbs sweep, rank {RANK}",
            "bpmf",
            gibbs.get("epoch_seconds"),
            gibbs.get("peak_rss_mb"),
            f"LensKit ALS, 1 epoch, rank {RANK}",
            lenskit,
            "epoch_seconds",
            "-",
        ),
        _row(
            f"iALS epoch, {ials.get('n_factors', '-')} factors, 3 CG steps (median of 3)",
            "ials (positives: ratings ≥ 4)",
            ials.get("epoch_seconds"),
            ials.get("peak_rss_mb"),
            "implicit ALS, 1 iteration, same settings (median of 3)",
            implicit,
            "epoch_seconds",
            _met(ials_ok) + f" (≥ 1.0×, ≤ 1.2× implicit's memory: {_f(memory_limit, 0)} MB)",
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
        f"Validation MSE after that one epoch: cfexp SGD {_f(sgd.get('val_mse'), 4)}, bpmf "
        f"{_f(gibbs.get('val_mse'), 4)}, LensKit ALS {_f(lenskit.get('val_mse'), 4)}, Surprise SVD "
        f"{_f(surprise.get('val_mse'), 4)}. The peak RSS of each peer: LensKit {_f(lenskit.get('peak_rss_mb'), 0)} MB, "
        f"Surprise {_f(surprise.get('peak_rss_mb'), 0)} MB, implicit {_f(implicit.get('peak_rss_mb'), 0)} MB (its "
        f"CSR matrix built in {_f(implicit.get('setup_seconds'))} s before the timed iteration). cfexp's fused CPU "
        f"loops were loaded from numba's cache before the epochs (SGD {_f(sgd.get('kernel_load_seconds'), 2)} s, "
        f"iALS {_f(ials.get('kernel_load_seconds'), 2)} s; compiling them the first time on a machine takes a few "
        "seconds).",
        "",
        "### Set-up and full ranking",
        "",
        "A trainer's set-up is everything between a run's start and its first epoch: the model and the trainer's "
        "sparse layouts of the ratings (counting sorts). The layouts are kept on the training data, so the next "
        "trial of a study (same data) finds them built: the next-trial column is measured by starting a second fit "
        "on the same data. The split's ranking sets (each user's training and relevant movies), built once per split "
        f"whatever the trainer, took {_f(sgd.get('ranking_sets_seconds'))} s and are timed apart. "
        "The full ranking is every ranked user × every movie seen in training, in blocks of 16M "
        "scores, as every run does after its fit; its floor is the same blocks through a bare `torch.mm` of the "
        "model's factor tables and `torch.topk`, nothing else, in the same process.",
        "",
        "| trainer | epoch (s) | set-up, first trial (s) | set-up, next trial (s) | set-up ≤ epoch | full ranking (s) "
        "| floor (s) | ranking ÷ floor | ≤ 2× floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in (("SGD (fast recipe)", sgd), (f"bpmf (rank {RANK})", gibbs), ("ials", ials)):
        lines.append(_setup_row(name, m))
    again = ials.get("remeasured")
    lines += [
        "",
        *(
            [
                f"The iALS and implicit rows were measured again after the run, at {again}, each as the median of "
                "three epochs (iterations): in the run their single epochs were within this machine's noise of each "
                f"other (cfexp {_f(again_from.get('epoch_seconds'), 2)} s, implicit "
                f"{_f(again_from.get('implicit_epoch_seconds'), 2)} s), and the same code has measured 1.0 to 2.7 s "
                "for one iALS epoch here.",
                "",
            ]
            if again and (again_from := ials.get("first_measurement", {}))
            else []
        ),
        f"NDCG@10 of those models after their timed epochs, over {_users(sgd.get('ranked_users'))} users: SGD "
        f"{_f(sgd.get('ndcg_at_10'), 4)}, bpmf {_f(gibbs.get('ndcg_at_10'), 4)}, ials {_f(ials.get('ndcg_at_10'), 4)}.",
        "",
        "The SGD epochs are not the same algorithm: Surprise's SVD steps one rating at a time in Cython, without "
        f"momentum, on one core; cfexp's epoch is SGD with momentum over {BATCH:,}-rating batches, exactly as torch's "
        "SGD would step them (the lazy-vs-dense equality test), on this machine's two cores.",
        "",
        *sweep_lines(r.get("scale-sweep", {}), "make bench-scale"),
    ]
    failed = [f"{name}: {m['error']}" for name, m in r.items() if "error" in m]
    return lines + ([f"Failed measurements: {'; '.join(failed)}.", ""] if failed else [])


SWEEP_MINUTES, SWEEP_GB = 60, 12


def sweep_lines(sweep: dict, target: str) -> list[str]:
    """The 25M sweep: its wall and memory against the aims, and each study's test figures."""
    if not sweep or "error" in sweep:
        return [f"The 25M sweep did not run: {sweep.get('error', 'not measured')}.", ""] if sweep else []
    minutes, largest = sweep["wall"] / 60, sweep["largest_process_mb"]
    peaks = ", ".join(f"{mb:,.0f}" for mb in sweep["process_peaks_mb"])
    data = sweep.get("dataset", {})
    lines = [
        "### The 25M sweep",
        "",
        f"`{target}` runs `cfexp sweep experiments/ml-25m.toml --ratings reports/scale/ml-25m.csv --workers 2` on "
        f"fresh stores: {data.get('ratings', 0):,} ratings of {data.get('users', 0):,} users and "
        f"{data.get('movies', 0):,} movies, split {_split(data.get('split') or {})}. Wall **{minutes:.1f} min** (aim ≤ "
        f"{SWEEP_MINUTES} min: {_met(minutes <= SWEEP_MINUTES)}), of which the final fits (each study's best refit "
        f"on train + validation and scored on test) {_f(sweep.get('final_seconds'), 0)} s. Largest process "
        f"**{largest:,.0f} MB** (aim ≤ {SWEEP_GB} GB: {_met(largest <= SWEEP_GB * 1024)}); every process's peak, "
        f"sampled each half second: {peaks} MB.{' ' + sweep['note'] if sweep.get('note') else ''}",
        "",
        "| study | trials | best on validation | test MSE | test NDCG@10 | best params |",
        "|---|---|---|---|---|---|",
    ]
    for row in sweep["studies"]:
        params = ", ".join(f"{k} {_short(v)}" for k, v in (row.get("params") or {}).items())
        lines.append(
            f"| {row['study'].split('/')[-1]} | {row.get('trials')} | {row.get('objective')} "
            f"{_f(row.get('best_value'), 4)} | {_f(row.get('test_loss'), 4)} | {_f(row.get('test_ndcg_at_10'), 4)} "
            f"| {params} |"
        )
    return [*lines, ""]


def _split(sizes: dict) -> str:
    return ", ".join(
        f"{sizes[k]:,} {name}"
        for k, name in (("train", "train"), ("val", "validation"), ("test", "test"))
        if k in sizes
    )


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _setup_row(name: str, m: dict, digits: int = 1) -> str:
    epoch, ranking, floor = m.get("epoch_seconds"), m.get("ranking_seconds"), m.get("ranking_floor_seconds")
    first, again = m.get("setup_seconds"), m.get("setup_again_seconds")
    setup_ok = None not in (epoch, first, again) and max(first, again) <= epoch
    ratio = ranking / floor if ranking and floor else None
    return (
        f"| {name} | {_f(epoch, digits)} | {_f(first, digits)} | {_f(again, digits)} | {_met(setup_ok)} | "
        f"{_f(ranking, digits)} | {_f(floor, digits)} | "
        f"{_f(ratio, 2)}× | {_met(ratio is not None and ratio <= 2.0)} |"
    )


def _ratio_at_least(theirs: dict, ours: dict, at_least: float) -> bool:
    key = "epoch_seconds"
    return (
        not ("error" in theirs or "error" in ours)
        and bool(theirs.get(key) and ours.get(key))
        and (theirs[key] / ours[key] >= at_least)
    )


def gpu_section(r: dict) -> list[str]:
    """`make bench-gpu`: cfexp's epochs, full ranking and the 25M sweep with --device cuda."""
    lines = [
        "## make bench-gpu: 25M ratings on a GPU (`--device cuda`)",
        "",
        "The scale part's steps on the same synthetic file, each in its own process with `--device cuda`: the "
        "epochs run torch ops on the GPU (the fused CPU loops are the CPU's), and the full ranking and its floor take "
        "blocks of 256M scores. Where the ranking misses its aim, what costs is on the GPU itself: a profile of the "
        "pass shows topk and the product as the floor has them, plus the score's own elementwise passes (biases, the "
        "sigmoid range or the clamp), the masking of seen movies, and for a clamped model the rows tied at its "
        "ceiling.",
        "",
        "| trainer | epoch (s) | set-up, first trial (s) | set-up, next trial (s) | set-up ≤ epoch | full ranking (s) "
        "| floor (s) | ranking ÷ floor | ≤ 2× floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("SGD (fast recipe)", "gpu-sgd"), (f"bpmf (rank {RANK})", "gpu-gibbs"), ("ials", "gpu-ials")):
        lines.append(_setup_row(name, r.get(key, {}), digits=2))
    sweep = r.get("gpu-sweep")
    lines += [""]
    lines += (
        sweep_lines(sweep, "make bench-gpu")
        if sweep
        else ["The 25M sweep was not measured in this run (it needs the project's environment, MLflow and Optuna).", ""]
    )
    failed = [f"{name}: {m['error']}" for name, m in r.items() if "error" in m]
    return lines + ([f"Failed measurements: {'; '.join(failed)}.", ""] if failed else [])


def _ok(m: dict, key: str, limit: float) -> bool:
    return "error" not in m and m.get(key) is not None and m[key] <= limit


def _row(step, ours, seconds, rss, peer, theirs, key, target) -> str:
    return (
        f"| {step} | {ours} | {_f(seconds)} | {_f(rss, 0)} | {peer} | {_f(theirs.get(key))} | "
        f"{_ratio(theirs, key, seconds)} | {target} |"
    )
