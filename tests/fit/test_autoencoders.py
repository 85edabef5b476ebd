"""The variational autoencoders on a small problem they must learn: users in two groups, each choosing from its own
half of the movies. Every epoch is ranked by fold-in of the users' training positives, the best is kept, and a
seed gives the same model again."""

import math

import pytest
import torch

from cfexp.config.experiment import RunConfig
from cfexp.data.ratings import Ratings, TensorPart
from cfexp.metrics.ranking import Protocol
from cfexp.variants import runner
from cfexp.variants.runner import SplitTensors


def two_groups(seed: int = 0) -> SplitTensors:
    """40 users, 30 movies: users 0-19 choose among movies 0-14, the others among 15-29 (7 each; 2 held out)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for user in range(40):
        pool = np.arange(15) + (15 if user >= 20 else 0)
        for i, movie in enumerate(rng.choice(pool, 9, replace=False)):
            rows.append((user, int(movie), 5.0, i >= 7))
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "held"])
    frame["user"], frame["movie"] = frame.userId.astype("int32"), frame.movieId.astype("int32")
    ratings = Ratings(frame, np.arange(40), np.arange(30), None, "two groups")

    def part(mask) -> TensorPart:
        rows = frame[mask]
        return TensorPart(
            *(torch.tensor(rows[c].to_numpy()) for c in ("user", "movie")),
            torch.tensor(rows.rating.to_numpy(), dtype=torch.float32),
        )

    return SplitTensors(ratings, None, torch.device("cpu"), part(~frame.held), part(frame.held), None, Protocol(5, 4.0))


@pytest.mark.parametrize(("variant", "options"), [("multvae", {"anneal_epochs": 5}), ("recvae", {"encoder_passes": 2})])
def test_a_vae_learns_the_groups_and_keeps_its_best_epoch(variant, options):
    data = two_groups()
    run = RunConfig(name=variant, variant=variant, n_factors=8, options={"hidden": 32, **options},
                    phases=((25, 0.01),), batch_size=8, restore_best=True)  # fmt: skip
    run = runner.resolved(run, data)
    model, result = runner.fit_run(run, data)
    ranked = [h["ndcg_at_5"] for h in result.history]
    assert len(ranked) == 25 and all(math.isfinite(v) for v in ranked)  # every epoch ranked (fold-in)
    assert result.ranking["ndcg_at_5"] == pytest.approx(max(ranked))  # ends on its best epoch
    # the group is found: its 8 candidates first (2 of them relevant, in no learnable order) score about 0.45, a
    # random order of all 23 candidates about 0.2
    assert max(ranked) > 0.4
    scores = model.score_matrix(torch.tensor([0, 39]), torch.arange(30))
    assert scores[0, :15].mean() > scores[0, 15:].mean() and scores[1, 15:].mean() > scores[1, :15].mean()
    assert torch.isnan(model(torch.tensor([0]), torch.tensor([0]))).all()  # it ranks; it predicts no rating
    _, again = runner.fit_run(run, data)
    assert [h["ndcg_at_5"] for h in again.history] == ranked  # seeded


def test_impossible_options_are_refused():
    from cfexp.errors import UserError
    from cfexp.variants import registry

    with pytest.raises(UserError, match="dropout"):
        registry.build_model("multvae", 3, 4, options={"dropout": 1.0})
    with pytest.raises(UserError, match="gamma"):
        registry.build_model("recvae", 3, 4, options={"gamma": -1.0})
