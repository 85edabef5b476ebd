"""The report's sections, built from the stores, and the page written from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna

from cfexp.data import key as data_key
from cfexp.data import ratings as data
from cfexp.data.dataset import load_dataset
from cfexp.errors import UserError
from cfexp.report import comparisons, figures, learned
from cfexp.report.collect import LESSON, Stores, Study
from cfexp.report.leaderboard import leaderboard_section
from cfexp.report.protocol import protocol_section
from cfexp.report.sections import Section, fmt, md_table, write_page
from cfexp.variants.registry import get_variant


def build_report(
    experiment, storage: optuna.storages.BaseStorage, out_root: Path, user_id: str | None = None, on_open=None
) -> Path:
    """Write reports/<experiment>/{report.md,index.html,*.png}; return the folder. `on_open(name)` is called once
    the experiment's name on its data is known, before the stores are read (the CLI reconciles them there)."""
    stores = Stores(storage)
    dataset = load_dataset(experiment.data)
    ratings, split = dataset.ratings, dataset.split
    key = data_key.data_key(dataset, experiment)
    experiment = data_key.named_for_data(experiment, key)
    if on_open is not None:
        on_open(experiment.name)
    studies = stores.studies(experiment.name)
    if not studies:
        raise UserError(f"no sweep of {experiment.name!r} in {stores.client.tracking_uri}: run cfexp sweep first")
    for study in studies:
        data_key.check_tagged(f"study {study.name}", study.data, key)
    folder = Path(out_root) / experiment.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    sections = [
        dataset_section(ratings, split, folder),
        protocol_section(experiment, dataset, studies, folder),
        seed_section(stores),
        leaderboard_section(studies),
        comparisons.ranking_section(studies, experiment.eval.k),
        comparisons.evaluation_section(stores.evaluation(experiment.name, key.key), experiment.eval.k),
        curves_section(studies, folder),
        *study_sections(studies, folder),
        init_section(studies, stores, folder),
        learned_section(studies, stores, ratings, folder, user_id),
        links_section(studies, experiment),
    ]
    write_page(folder, f"cfexp report: {experiment.name}", experiment.description, sections)
    return folder


def dataset_section(ratings, split, folder: Path) -> Section:
    info = data.summary(ratings, split)
    s = Section("The dataset")
    if ratings.implicit:
        merged = f", {ratings.repeats:,} repeated interactions merged into their first" if ratings.repeats else ""
        s.add(
            f"`{info['source']}`: **{info['users']:,} users**, **{info['movies']:,} items**, **{info['ratings']:,} "
            f"interactions**, implicit feedback (no ratings: every interaction a positive){merged}; content digest "
            f"`{info['digest']}`. Split: {split.sizes()['train']:,} train, {split.sizes()['val']:,} validation, "
            f"{split.sizes()['test']:,} test (section 2)."
        )
        return s
    s.add(
        f"`{info['source']}`: **{info['users']:,} users**, **{info['movies']:,} movies**, "
        f"**{info['ratings']:,} ratings** from {fmt(info['rating_min'], 1)} to {fmt(info['rating_max'], 1)}; "
        f"content digest `{info['digest']}`. Split: {split.sizes()['train']:,} train, "
        f"{split.sizes()['val']:,} validation, {split.sizes()['test']:,} test (section 2)."
    )
    s.figure(figures.rating_histogram(ratings.frame, folder), "Ratings by value")
    table = data.crosstab(ratings)
    s.add("The lesson's crosstab, the 15 busiest users by the 15 most-rated movies:")
    s.add(
        md_table(
            [["user", *map(str, table.columns)]]
            + [[str(u), *(fmt(v, 1) for v in row)] for u, row in zip(table.index, table.to_numpy(), strict=True)]
        )
    )
    return s


def seed_section(stores: Stores) -> Section | None:
    runs = stores.seed_runs()
    if not runs:
        return None
    s = Section("The seed lesson, reproduced")
    rows = [["run", "lesson, 3 epochs", "ours", "lesson, 6 epochs", "ours", "MLflow run"]]
    for run in runs:
        lesson = LESSON[run.name]
        rows.append([run.name, fmt(lesson[0]), fmt(run.after3), fmt(lesson[1]), fmt(run.after6), f"`{run.run_id}`"])
    s.add(md_table(rows))
    return s


def curves_section(studies: list[Study], folder: Path) -> Section:
    s = Section("Learning curves of each variant's best trial")
    # rating models with more than one epoch (a baseline's one closed-form step is no curve; BPR has no val MSE)
    curves = {
        st.label: st.history for st in studies if len(st.history) > 1 and all("val_loss" in h for h in st.history)
    }
    s.figure(figures.learning_curves(curves, folder), "Learning curves")
    return s


def study_sections(studies: list[Study], folder: Path) -> list[Section]:
    intro = Section("The studies")
    intro.add(
        "Per study: Optuna's optimization history, the parameter importances (`optuna.importance`), and the "
        "best trial's tuned parameters."
    )
    out = [intro]
    for i, st in enumerate(studies):
        s = Section(f"Study `{st.name}`", level=3)
        if st.optuna_study is not None and st.best:
            s.figure(
                figures.optuna_figure(st.optuna_study, "optimization_history", folder, f"history_{i}"),
                "Optimization history",
            )
            try:
                importances = optuna.importance.get_param_importances(st.optuna_study)
            except (RuntimeError, ValueError):
                importances = {}
            if importances:
                s.figure(
                    figures.optuna_figure(st.optuna_study, "param_importances", folder, f"importance_{i}"),
                    "Parameter importances",
                )
                s.add(
                    "Importances (Optuna's default PED-ANOVA evaluator): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in importances.items())
                    + "."
                )
        if st.best:
            fixed = _fixed_settings(st)
            score = f"val MSE {fmt(st.best.best_val_loss)}" if st.rates else ""
            if st.objective != "val_loss":
                score = f"{st.objective.replace('_at_', '@')} {fmt(st.best.value(st.objective))} (tuned for it)"
            s.add(f"Best trial `{st.best.name}` (MLflow run `{st.best.run_id}`), {score}; fixed settings: {fixed}.")
            if st.final is not None and st.final.refit_trial is not None:
                s.add(
                    f"Its refit on train + validation diverged, so the final model is trial {st.final.refit_trial}'s "
                    "refit, the next best by validation (its MLflow final runs say why)."
                )
            s.add(md_table([["tuned", "value"]] + [[k, _short(v)] for k, v in _tuned(st).items()]))
        else:
            s.add("No trial completed.")
        out.append(s)
    return out


def _tuned(study: Study) -> dict:
    """The best trial's values of the keys Optuna searched."""
    if study.optuna_study is not None:
        trial = next(
            (t for t in study.optuna_study.trials if t.user_attrs.get("mlflow_run_id") == study.best.run_id), None
        )
        if trial is not None:
            return dict(trial.params)
    return dict(study.best.params)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def init_section(studies: list[Study], stores: Stores, folder: Path) -> Section | None:
    sigmoid = [st for st in studies if st.variant == "dot_bias_sigmoid" and st.best]
    if not sigmoid:
        return None
    s = Section("Init ranges")
    s.add(
        md_table(
            [["study", "init", "best val MSE"]] + [[st.label, st.init, fmt(st.best.best_val_loss)] for st in sigmoid]
        )
    )
    shares, notes = {}, []
    candidates = [(f"{st.label} ({'final model' if st.final else 'best trial'})", st.model_run) for st in sigmoid]
    candidates += [(f"seed lesson {r.name}", r.run_id) for r in stores.seed_runs() if r.name == "dot_bias_sigmoid"]
    for label, run_id in candidates:
        model = stores.model(run_id)
        if model is None:
            continue
        s_values = learned.singular_values(model)
        shares[label] = s_values
        second = s_values[1] if len(s_values) > 1 else 0.0
        notes.append(
            f"- {label}: effective rank **{learned.effective_rank(s_values)}** of {len(s_values)} factors "
            f"(σ₂/σ₁ = {second:.1e})"
        )
    if shares:
        s.add(
            "Computed from the learned movie factors (singular values above 10⁻³ of the largest count as rank). "
            "A constant init gives every factor column the same start and therefore the same gradient: the "
            "columns stay identical, and the model is effectively rank one."
        )
        s.add("\n".join(notes))
        s.figure(figures.singular_value_plot(shares, folder), "Singular values")
    return s


def _fixed_settings(st: Study) -> str:
    """The best trial's settings that the study did not tune, in the terms of the variant's trainer."""
    return get_variant(st.variant).fixed_settings(st.best.params)


def learned_section(studies: list[Study], stores: Stores, ratings, folder: Path, user_id: str | None) -> Section | None:
    # The lesson's biased models: bpmf has biases too, but its prior's learned mean lets the factors carry part of
    # each movie's effect, so its bias column alone does not rank movies.
    with_bias = [st for st in studies if st.best and st.variant.startswith("dot_bias")]
    if not with_bias or ratings.user_ids.dtype == object:  # the lesson's story, told in MovieLens' integer ids
        return None
    best = min(with_bias, key=lambda st: st.best.best_val_loss)
    model = stores.model(best.model_run)
    if model is None:
        return None
    s = Section("What the best model learned")
    s.add(
        f"From `{best.label}`'s {'final model' if best.final else 'best trial'} (MLflow run `{best.model_run}`), the "
        "best of the lesson's models with biases. "
        "(bpmf has a bias per movie too, but the mean of its prior, drawn from the data, lets its factors carry "
        "part of each movie's effect, so its bias column alone does not rank movies.)"
    )
    threshold = learned.bias_threshold(ratings)
    high, low = learned.movie_biases(model, ratings, threshold)
    for label, table in (("Highest", high), ("Lowest", low)):
        s.add(f"{label} learned movie bias (movies with at least {threshold} ratings):")
        s.add(
            md_table(
                [["title", "bias", "ratings"]] + [[r.title, fmt(r.bias, 3), r.ratings] for r in table.itertuples()]
            )
        )
    s.figure(figures.pca_plot(learned.movie_pca(model, ratings), folder), "PCA of movie factors")
    user = _user(user_id, ratings)
    recs = learned.recommendations(model, ratings, user, min_ratings=threshold)
    rated = int((ratings.frame.userId == user).sum())
    s.add(f"Top 10 for user {user} among movies with at least {threshold} ratings, leaving out the {rated} they rated:")
    s.add(md_table([["title", "predicted"]] + [[r.title, fmt(r.predicted, 2)] for r in recs.itertuples()]))
    return s


def _user(user_id, ratings) -> int:
    """The user whose recommendations the report shows: the one asked for, else the data's first."""
    if user_id is None:
        return int(ratings.frame.userId.iloc[0])
    try:
        return int(user_id)
    except ValueError:
        raise UserError(f"--user {user_id!r}: the data's users are integers") from None


def links_section(studies: list[Study], experiment) -> Section:
    s = Section("Runs and how to reproduce")
    s.add(
        f"Reproduce: `cfexp sweep {experiment.path}` (or `make sweep EXP={experiment.path}`), then "
        f"`cfexp report {experiment.path}`."
    )
    rows = [["study", "trial", "state", "best val MSE", "MLflow run id"]]
    for st in studies:
        for t in st.trials:
            rows.append([st.label, t.number, t.state, fmt(t.best_val_loss), f"`{t.run_id}`"])
    s.add(md_table(rows))
    return s
