"""How cfexp names what it writes in the two stores: study names, and every `cfexp.*` tag and attribute key.

MLflow run tags (and registered-version tags) and Optuna study or trial user attributes share one namespace, so
that a run and its trial say the same thing under the same key. Users filter on these: add keys, never rename one.
"""

from __future__ import annotations


def study_name(experiment: str, study: str) -> str:
    """A study's name in both stores: `<experiment>/<study>` (the Optuna study, and its parent run's `optuna.study`)."""
    return f"{experiment}/{study}"


def experiment_of(study_name: str) -> str:
    """The experiment a study's name belongs to."""
    return study_name.split("/")[0]


# ---------------------------------------------------------------- MLflow run tags
EXPERIMENT = "cfexp.experiment"  # the cfexp experiment a run belongs to
ROLE = "cfexp.role"  # study | trial | final | train | evaluate
STUDY = "cfexp.study"
VARIANT = "cfexp.variant"
OBJECTIVE = "cfexp.objective"  # what a study tunes: val_loss or a ranking metric (also a study attribute)
DATA = "cfexp.data"  # the key of the rows and values a study is tuned on (also a study attribute)
MODEL = "cfexp.model"  # a run holds a logged model
BEST = "cfexp.best"  # the trial run whose model stands for its study
BEST_TRIAL = "cfexp.best_trial"  # the trial a final run refits
FINAL_RUN_ID = "cfexp.final_run_id"
FAIL_REASON = "cfexp.fail_reason"
PRUNED = "cfexp.pruned"
ENDED_BY = "cfexp.ended_by"  # "reconcile": ended by a later command, its process gone
REPLACES_RUN = "cfexp.replaces_run"  # a retry's run names the lost run it replaces
RETRY_OF = "cfexp.retry_of"
RETRY_OF_TRIAL = "cfexp.retry_of_trial"
WORKER = "cfexp.worker"  # the process that ran a trial (and a study attribute: the worker holding a study)
FOLD = "cfexp.fold"
TEST_LEAD = "cfexp.test_lead"
TEST_RANKING_LEAD = "cfexp.test_ranking_lead"

# ---------------------------------------------------------------- registered model version tags
TRIAL = "cfexp.trial"
TRIAL_RUN_ID = "cfexp.trial_run_id"
RUN_ID = "cfexp.run_id"
VALUE = "cfexp.value"
VAL_MSE = "cfexp.val_mse"
TEST_MSE = "cfexp.test_mse"
TEST_NDCG = "cfexp.test_ndcg"

# ---------------------------------------------------------------- Optuna study and trial user attributes
BUDGET = "cfexp.budget"  # a study's trial budget, for a reconciler to tell spent from interrupted
DONE = "cfexp.done"  # a study whose parent run is summarised and ended
IN = "cfexp.in"  # the processes working in a study right now
FINAL = "cfexp.final"  # the claim and record of a study's final fit
OWNER = "cfexp.owner"  # the process running a trial
LOST = "cfexp.lost"  # why a trial was failed as lost
SAMPLED = "cfexp.sampled"  # how a trial's point was chosen: enqueued | retry | startup | model
