"""`cfexp synth`: synthetic ratings shaped like a MovieLens release, seeded, readable by cfexp's own loader."""

import hashlib

import numpy as np
import pytest

from cfexp.cli.main import main
from cfexp.data import ratings as data
from cfexp.data.synth import SHAPES


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_is_consistent(shape):
    spec = SHAPES[shape]
    assert sum(spec.histogram.values()) == spec.ratings
    assert spec.users * spec.min_per_user <= spec.ratings and spec.movies <= spec.max_movie_id


def test_an_ml_100k_shaped_file_has_its_shape(tmp_path, capsys):
    out = tmp_path / "ratings.csv"
    assert main(["synth", "--shape", "ml-100k", str(out)]) == 0
    assert "100,000 ratings, 943 users, 1,682 movies" in capsys.readouterr().out
    ratings = data.load_ratings(out)  # cfexp's own loader: no duplicate pairs, valid values
    frame = ratings.frame
    assert (len(frame), ratings.n_users, ratings.n_movies) == (100_000, 943, 1_682)
    assert frame.groupby("userId").size().min() >= 20
    counts = frame.rating.value_counts()
    for rating, expected in SHAPES["ml-100k"].histogram.items():
        assert abs(counts[rating] - expected) <= 1
    per_movie = frame.groupby("movieId").size().sort_values()
    assert per_movie.iloc[-1] > 15 * per_movie.median()  # a popularity skew (ml-100k's: 583 against 27)
    assert out.read_text().splitlines()[0] == "userId,movieId,rating,timestamp"


def test_the_same_seed_writes_the_same_file(tmp_path):
    digests = []
    for name, seed in (("a.csv", 7), ("b.csv", 7), ("c.csv", 8)):
        assert main(["synth", "--shape", "ml-100k", "--seed", str(seed), str(tmp_path / name)]) == 0
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def test_ratings_carry_structure_a_model_can_learn(tmp_path):
    """Each user's mean rating differs from the others' more than chance would make it (user biases)."""
    out = tmp_path / "ratings.csv"
    assert main(["synth", "--shape", "ml-100k", str(out)]) == 0
    frame = data.load_ratings(out).frame
    shuffled = frame.assign(rating=np.random.default_rng(0).permutation(frame.rating.to_numpy()))
    assert frame.groupby("userId").rating.mean().std() > 1.5 * shuffled.groupby("userId").rating.mean().std()


def test_an_unknown_shape_is_one_line(tmp_path, capsys):
    assert main(["synth", "--shape", "ml-7m", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown shape 'ml-7m'" in err and not (tmp_path / "r.csv").exists()
