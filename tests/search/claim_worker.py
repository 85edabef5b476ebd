"""One of several processes that open the same study at the same instant and claim trials as fast as they can.

Run as `python claim_worker.py EXPERIMENT START_AT BUDGET`; prints how many trials it claimed."""

import sys
import time

from cfexp import track
from cfexp.config.experiment import load_experiment
from cfexp.data import ratings as data
from cfexp.search import study_store, sweep
from cfexp.variants import runner


def main(path: str, start_at: float, budget: int) -> int:
    experiment = load_experiment(path)
    ratings = data.load_ratings(experiment.data.ratings)
    tensors = runner.to_device(ratings, data.split_rows(len(ratings.frame)), "cpu")
    tracker = track.Tracker(experiment.name)
    runs = sweep.Sweep(experiment, tensors, tracker, study_store.open_store(None))
    time.sleep(max(0.0, start_at - time.time()))
    outcome = runs.open_study(experiment.sweep.studies[0], budget, budget)
    claimed = 0
    while (trial := runs.claim(outcome, budget, max_failures=budget)) is not None:
        time.sleep(0.05)  # a (very) short trial
        outcome.study.tell(trial, 1.0)
        claimed += 1
    tracker.close()
    print(claimed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
