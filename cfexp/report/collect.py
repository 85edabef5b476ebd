"""Read a finished sweep back from the MLflow and Optuna stores (never re-training anything)."""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass, field

import mlflow
import optuna
import pandas as pd
from mlflow import MlflowClient

from cfexp import keys
from cfexp.track import tracking_uri
from cfexp.variants.registry import get_variant

SEED_EXPERIMENT = "seed_reproduction"
LESSON = {"dot": (1.222, 1.132), "dot_bias_sigmoid": (0.806, 0.794)}


def yardstick(studies: list[Study], role: str) -> Study | None:
    """The first study of a variant declared as the yardstick `role` (see variants.registry.YARDSTICKS)."""
    return next((st for st in studies if get_variant(st.variant).yardstick == role), None)


@dataclass
class Trial:
    run_id: str
    name: str
    number: int
    state: str
    params: dict
    best_val_loss: float
    test_loss: float | None
    status: str
    ranking: dict = field(default_factory=dict)  # ndcg_at_10 and the others, of the final model

    def value(self, objective: str) -> float:
        return self.best_val_loss if objective == "val_loss" else self.ranking.get(objective, math.nan)


@dataclass
class Final:
    """A study's final run: its best trial refit on train + validation and scored once on the test split."""

    run_id: str
    trial: int
    metrics: dict  # test_loss, test_rmse, test_mae, test_ndcg_at_10, ...
    refit_trial: int | None = None  # the trial refit, where the best trial's refit diverged


@dataclass
class Study:
    """One study as the stores hold it: its parent run, its trials, and Optuna's study object."""

    name: str
    label: str
    variant: str
    init: str
    parent_id: str
    trials: list[Trial]
    optuna_study: optuna.Study | None
    best: Trial | None = None
    history: list[dict] = field(default_factory=list)  # the best trial's epochs
    objective: str = "val_loss"  # what the study tuned: val_loss (minimised) or a ranking metric (maximised)
    final: Final | None = None  # the best trial refit on train + validation, scored once on test
    data: str = ""  # the short key of the data it was tuned on (cfexp.data.key)

    @property
    def model_run(self) -> str:
        """The run whose model stands for the study: its final run, else its best trial's."""
        return self.final.run_id if self.final else self.best.run_id

    def test(self, key: str) -> float:
        """The final model's test figure `key` (test_loss, test_ndcg_at_10, ...), NaN without one."""
        return self.final.metrics.get(key, math.nan) if self.final else math.nan

    @property
    def rates(self) -> bool:
        """Whether its best model predicts ratings (a ranking-only variant has no val MSE)."""
        return self.best is not None and math.isfinite(self.best.best_val_loss)

    def counts(self) -> dict[str, int]:
        states = [t.state for t in self.trials]
        return {s.lower(): states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")}

    def top(self, k: int = 5) -> list[float]:
        done = sorted(t.best_val_loss for t in self.trials if t.state == "COMPLETE" and math.isfinite(t.best_val_loss))
        return done[:k]

    def spread(self, k: int = 5) -> tuple[float, float]:
        """Mean and standard deviation of the top-k trials' best val MSE."""
        top = self.top(k)
        if not top:
            return math.nan, math.nan
        return statistics.fmean(top), statistics.stdev(top) if len(top) > 1 else 0.0


@dataclass
class SeedRun:
    name: str
    run_id: str
    after3: float
    after6: float


class Stores:
    def __init__(self, storage: optuna.storages.BaseStorage):
        self.client = MlflowClient(tracking_uri())
        mlflow.set_tracking_uri(self.client.tracking_uri)
        self.storage = storage

    def experiment_id(self, name: str) -> str | None:
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found else None

    def studies(self, experiment: str) -> list[Study]:
        exp_id = self.experiment_id(experiment)
        if exp_id is None:
            return []
        runs = self.client.search_runs([exp_id], max_results=5000)
        parents = [r for r in runs if r.data.tags.get(keys.ROLE) == "study"]
        studies = []
        for parent in sorted(parents, key=lambda r: r.info.start_time):
            children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
            finals = [c for c in children if c.data.tags.get(keys.ROLE) == "final"]
            children = [c for c in children if c not in finals]
            trials = sorted((_trial(c) for c in children), key=lambda t: t.number)
            name = parent.data.tags["optuna.study"]
            study = Study(
                name=name,
                label=parent.info.run_name,
                variant=parent.data.tags.get(keys.VARIANT, ""),
                init=parent.data.params.get("init", ""),
                parent_id=parent.info.run_id,
                trials=trials,
                optuna_study=self._optuna(name),
                objective=parent.data.tags.get(keys.OBJECTIVE, "val_loss"),
                data=parent.data.tags.get(keys.DATA, ""),
            )
            key = study.objective
            done = [t for t in trials if t.state == "COMPLETE" and math.isfinite(t.value(key))]
            if done:
                pick = min if key == "val_loss" else max
                study.best = pick(done, key=lambda t: t.value(key))
                study.history = self.history(study.best.run_id)
                study.final = _final(finals, study.best.number)
            studies.append(study)
        return studies

    def _optuna(self, name: str) -> optuna.Study | None:
        try:
            return optuna.load_study(study_name=name, storage=self.storage)
        except KeyError:
            return None

    def history(self, run_id: str) -> list[dict]:
        epochs: dict[int, dict] = {}
        for key in ("train_loss", "val_loss", "val_rmse"):
            for m in self.client.get_metric_history(run_id, key):
                epochs.setdefault(m.step, {"epoch": m.step})[key] = m.value
        return [epochs[k] for k in sorted(epochs)]

    def evaluation(self, experiment: str, data: str) -> pd.DataFrame | None:
        """The folds of the latest complete `cfexp evaluate` on data `data` (one row per study and fold), or None."""
        exp_id = self.experiment_id(experiment)
        if exp_id is None:
            return None
        parents = self.client.search_runs(
            [exp_id],
            filter_string=(
                f"tags.`{keys.ROLE}` = 'evaluate' and attributes.status = 'FINISHED' and tags.`{keys.DATA}` = '{data}'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not parents:
            return None
        children = self.client.search_runs(
            [exp_id], filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'", max_results=5000
        )
        rows = [
            {"study": c.data.tags[keys.STUDY], "fold": int(c.data.tags[keys.FOLD]), **c.data.metrics}
            for c in children
            if keys.STUDY in c.data.tags
        ]
        if not rows:
            return None
        table = pd.DataFrame(rows).sort_values(["fold", "study"], ignore_index=True)
        if "mse" not in table:
            table["mse"] = math.nan
        table.attrs["run_id"] = parents[0].info.run_id
        table.attrs["nested"] = parents[0].data.params.get("nested") == "True"
        table.attrs["test_lead"] = parents[0].data.tags.get(keys.TEST_LEAD)
        table.attrs["test_ranking_lead"] = parents[0].data.tags.get(keys.TEST_RANKING_LEAD)
        return table

    def seed_runs(self) -> list[SeedRun]:
        """The latest complete run of each of the lesson's two models, if seed_reproduction was run."""
        exp_id = self.experiment_id(SEED_EXPERIMENT)
        if exp_id is None:
            return []
        found = []
        for name in LESSON:
            runs = self.client.search_runs(
                [exp_id],
                filter_string=f"attributes.run_name = '{name}' and tags.`optuna.state` = 'COMPLETE'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if runs:
                history = self.history(runs[0].info.run_id)
                if len(history) >= 6:
                    found.append(SeedRun(name, runs[0].info.run_id, history[2]["val_loss"], history[5]["val_loss"]))
        return found

    def model(self, run_id: str):
        """The logged RatingPredictor of a run, or None if that run logged no model."""
        import mlflow.pyfunc

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return mlflow.pyfunc.load_model(f"runs:/{run_id}/model").unwrap_python_model().predictor
            except Exception:  # MLflow raises several kinds for "no model here"
                return None


def _final(runs, trial: int) -> Final | None:
    """The latest finished final run of the best trial."""
    done = [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get(keys.BEST_TRIAL) == str(trial)]
    if not done:
        return None
    run = max(done, key=lambda r: r.info.start_time)
    metrics = {k: v for k, v in run.data.metrics.items() if k.startswith("test_")}
    refit = int(run.data.params.get("refit_of_trial", trial))
    return Final(run.info.run_id, trial, metrics, refit if refit != trial else None)


def _trial(run) -> Trial:
    metrics = run.data.metrics
    return Trial(
        run_id=run.info.run_id,
        name=run.info.run_name,
        number=int(run.data.tags.get("optuna.trial", -1)),
        state=run.data.tags.get("optuna.state", "RUNNING"),
        params=dict(run.data.params),
        best_val_loss=metrics.get("best_val_loss", math.nan),
        test_loss=metrics.get("test_loss"),
        status=run.info.status,
        ranking={k: v for k, v in metrics.items() if "_at_" in k or k == "ranked_users"},
    )
