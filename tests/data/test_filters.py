"""The filters before the split, against results written out by hand."""

import pytest
from timed_ratings import RATINGS

from cfexp.config.data_table import DataConfig
from cfexp.data import filters
from cfexp.data.dataset import dataset_of
from cfexp.data.ratings import load_ratings
from cfexp.errors import UserError

# k = 2 takes two rounds: (c, z) goes first, then (c, x), whose user is left with one rating
CHAIN = """userId,movieId,rating
1,1,4
1,2,4
2,1,4
2,2,4
3,1,4
3,3,4
"""


def pairs(ratings) -> list[tuple[int, int]]:
    return list(zip(ratings.frame.userId.tolist(), ratings.frame.movieId.tolist(), strict=True))


def test_thresholds_are_one_pass_over_the_files_counts(tmp_path):
    (tmp_path / "r.csv").write_text(RATINGS)
    kept, taken = filters.apply(load_ratings(tmp_path / "r.csv"), min_user=3, min_movie=2)
    # user 3 (2 ratings) and movie 14 (1 rating) go; movie 12 keeps its 2 even though nothing is re-counted
    assert pairs(kept) == [(1, 10), (1, 11), (2, 10), (1, 12), (2, 11), (1, 13), (2, 12), (2, 13)]
    assert taken.before == {"ratings": 11, "users": 3, "movies": 5}
    assert taken.after == {"ratings": 8, "users": 2, "movies": 4} and taken.rounds == 0
    assert kept.n_users == 2 and sorted(kept.frame.user.unique()) == [0, 1]  # numbered again


def test_k_core_iterates_until_every_user_and_movie_has_k(tmp_path):
    (tmp_path / "r.csv").write_text(CHAIN)
    kept, taken = filters.apply(load_ratings(tmp_path / "r.csv"), k_core=2)
    assert pairs(kept) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert taken.rounds == 2
    assert taken.sentence() == "filters: 6 → 4 ratings, 3 → 2 users, 3 → 2 movies (2 k-core rounds)"


def test_filters_run_before_the_split_and_the_dataset_says_what_they_took(tmp_path):
    (tmp_path / "r.csv").write_text(RATINGS)
    settings = DataConfig(ratings=str(tmp_path / "r.csv"), split="user-last", min_user_ratings=3)
    dataset = dataset_of(load_ratings(tmp_path / "r.csv"), settings)
    assert len(dataset.ratings.frame) == 9
    assert dataset.split.about["users_whole"] == 0  # user 3, who would have stayed whole, is gone
    assert dataset.summary()["filters"]["after"] == {"ratings": 9, "users": 2, "movies": 5}
    assert any(line.startswith("filters: 11 → 9 ratings") for line in dataset.lines())


def test_no_filter_is_the_same_ratings(tmp_path):
    (tmp_path / "r.csv").write_text(RATINGS)
    ratings = load_ratings(tmp_path / "r.csv")
    assert filters.apply(ratings, min_user=1, min_movie=0, k_core=1) == (ratings, None)


def test_filters_that_leave_nothing_are_refused(tmp_path):
    (tmp_path / "r.csv").write_text(RATINGS)
    with pytest.raises(UserError, match="leave no rating"):
        filters.apply(load_ratings(tmp_path / "r.csv"), k_core=3)
