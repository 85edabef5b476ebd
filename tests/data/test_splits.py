"""The three splits on a small file whose expected parts are written out by hand (docs/evaluation.md's rules)."""

from pathlib import Path

import numpy as np
import pytest
from timed_ratings import RATINGS

from cfexp.cli.main import main
from cfexp.config.data_table import DataConfig
from cfexp.data import splits
from cfexp.data.dataset import cold, dataset_of
from cfexp.data.ratings import load_ratings
from cfexp.errors import UserError


@pytest.fixture()
def small(tmp_path) -> Path:
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS)
    return path


def parts(split) -> tuple[list, list, list]:
    return split.train.tolist(), split.val.tolist(), split.test.tolist()


def split_of(path: Path, **settings):
    return dataset_of(load_ratings(path), DataConfig(ratings=str(path), **settings)).split


def test_temporal_holds_out_the_latest_and_ties_at_the_cut_go_with_it(small):
    # 11 timestamps sorted: 100 150 200 300 300 400 500 600 600 700 800. Test: ⌈0.2·11⌉ = 3 latest, the cut is
    # position 8's 600, and row 7 (also 600) goes with it. The rest: ⌈0.25·7⌉ = 2, the cut position 5's 400.
    split = split_of(small, split="temporal", test_pct=0.2, val_pct=0.25)
    assert parts(split) == ([0, 1, 2, 3, 4], [5, 6], [7, 8, 9, 10])
    assert (split.about["test_from"], split.about["val_from"]) == (600, 400)


def test_temporal_without_a_test_part_cuts_validation_only(small):
    # ⌈0.5·11⌉ = 6 latest: position 5, timestamp 400
    split = split_of(small, split="temporal", test_pct=0.0, val_pct=0.5)
    assert parts(split) == ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [])


def test_user_last_holds_out_each_users_latest_and_keeps_short_histories_whole(small):
    # user 1 (rows 0 1 3 6 9): test 9, validation 6. User 2 (rows 2 4 7 10; 7 and 10 at the same second, 10 later
    # in the file, so later): test 10, validation 7. User 3 has 2 ratings, fewer than 2·1 + 1: whole in train.
    split = split_of(small, split="user-last", holdout=1)
    assert parts(split) == ([0, 1, 2, 3, 4, 5, 8], [6, 7], [9, 10])
    assert (split.about["users_whole"], split.about["users_split"]) == (1, 2)


def test_user_last_with_two_held_out_needs_five_ratings(small):
    assert parts(split_of(small, split="user-last", holdout=2)) == ([0, 2, 4, 5, 7, 8, 10], [1, 3], [6, 9])


def test_user_last_fraction_rounds_up_exactly(small):
    # ⌈0.2·5⌉ = 1 (not 2, as 0.2 * 5 = 1.0000000000000002 would give); ⌈0.2·4⌉ = 1; ⌈0.2·2⌉ = 1, too few
    assert parts(split_of(small, split="user-last", holdout=0.2)) == ([0, 1, 2, 3, 4, 5, 8], [6, 7], [9, 10])


def test_random_is_the_seeded_draw(small):
    # test: RandomState(42).permutation(11)[:2] sorted; validation: default_rng([42, 1]) draws 1 of the other 9
    split = split_of(small, split="random", test_pct=0.2, val_pct=0.2, seed=42)
    assert parts(split) == ([2, 3, 4, 6, 7, 8, 9, 10], [1], [0, 5])
    assert parts(split_of(small, split="random", test_pct=0.2, val_pct=0.2, seed=42)) == parts(split)
    assert parts(split_of(small, split="random", test_pct=0.2, val_pct=0.2, seed=7)) != parts(split)


def test_every_split_is_a_pure_function_of_rows_and_settings():
    rng = np.random.default_rng(0)
    users, stamps = rng.integers(0, 50, 2_000), rng.integers(0, 10_000, 2_000)
    for make in (lambda: splits.temporal(stamps, 0.1, 0.2), lambda: splits.user_last(users, stamps, 2)):
        first, again = make(), make()
        assert parts(first) == parts(again)
        everything = np.sort(np.concatenate([first.train, first.val, first.test]))
        assert np.array_equal(everything, np.arange(2_000))  # each row in exactly one part


def test_cold_counts_rows_users_and_movies_without_a_fitted_row(small):
    split = split_of(small, split="temporal", test_pct=0.2, val_pct=0.25)
    ratings = load_ratings(small)
    # test rows 7 8 9 10 against train + validation (rows 0-6): movies 12 and 13 are there, 14 is not; all users are
    found = cold(ratings, split.refit_rows(), split.test)
    assert found == {"rows": 1, "of_rows": 4, "users": 0, "of_users": 3, "movies": 1, "of_movies": 4}
    # validation rows 5 6 against train (rows 0-4): user 3 and movie 13 have no train row
    found = cold(ratings, split.train, split.val)
    assert found == {"rows": 2, "of_rows": 2, "users": 1, "of_users": 2, "movies": 1, "of_movies": 2}


def test_a_time_split_of_a_file_without_timestamps_is_refused_in_one_line(tmp_path, workdir, capsys):
    path = tmp_path / "untimed.csv"
    path.write_text("userId,movieId,rating\n" + "".join(f"{u},{m},4.0\n" for u in range(5) for m in range(5)))
    for kind in ("temporal", "user-last"):
        code = main(["sweep", "experiments/quickstart.toml", "--ratings", str(path), "--set", f"data.split={kind}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1
        assert "has no timestamps" in err[0] and kind in err[0]
    assert not (workdir / "mlruns" / "mlflow.db").exists()  # refused before either store was made


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("data.split=later", "split must be one of random, temporal, user-last"),
        ("data.holdout=0", "holdout must be a count"),
        ("data.holdout=1.5", "holdout must be a count"),
        ("data.k_core=-1", "k_core must be >= 0"),
    ],
)
def test_impossible_split_settings_are_refused(workdir, capsys, setting, words):
    assert main(["sweep", "experiments/quickstart.toml", "--set", setting]) == 2
    assert words in capsys.readouterr().err


def test_a_split_that_leaves_a_part_empty_is_refused(small):
    with pytest.raises(UserError, match="leave no validation and no test rows"):
        split_of(small, split="user-last", holdout=5)


def test_a_trainer_is_given_each_ratings_time(small):
    from cfexp.variants import runner

    ratings = load_ratings(small)
    split = split_of(small, split="temporal", test_pct=0.2, val_pct=0.25)
    tensors = runner.to_device(ratings, split, "cpu")
    assert tensors.train.times.tolist() == [100, 200, 150, 300, 300]  # rows 0-4, in file order
    assert tensors.test.times.tolist() == [600, 700, 800, 600]
