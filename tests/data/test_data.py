import zipfile

import numpy as np
import pandas as pd
import pytest

from cfexp.data import ratings as data
from cfexp.errors import UserError


def test_embedded_dataset_is_the_2016_edition(ratings):
    info = data.summary(ratings)
    assert (info["ratings"], info["users"], info["movies"]) == (100_004, 671, 9_066)
    assert (info["rating_min"], info["rating_max"]) == (0.5, 5.0)
    assert ratings.title(1) == "Toy Story (1995)"


def test_validation_split_is_the_lessons_get_cv_idxs(ratings):
    n = len(ratings.frame)
    np.random.seed(42)
    expected = np.random.permutation(n)[: int(0.2 * n)]
    split = data.split_rows(n)
    assert np.array_equal(split.val, expected)
    assert len(split.test) == 0
    assert sorted(np.concatenate([split.train, split.val]).tolist()) == list(range(n))


def test_with_a_test_split_the_lessons_rows_test_and_validation_is_carved_from_the_rest(ratings):
    n = len(ratings.frame)
    lesson, held = data.split_rows(n), data.split_rows(n, val_pct=0.1, test_pct=0.2)
    assert np.array_equal(held.test, np.sort(lesson.val))  # the lesson's 20%: comparable with it and with peers
    rest = n - len(held.test)
    assert len(held.val) == int(0.1 * rest)
    parts = [set(held.train), set(held.val), set(held.test)]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    assert len(held.train) + len(held.val) + len(held.test) == n
    assert np.array_equal(held.refit_rows(), np.sort(np.concatenate([held.train, held.val])))
    assert len(held.search().test) == 0
    again = data.split_rows(n, val_pct=0.1, test_pct=0.2)
    assert np.array_equal(again.val, held.val)  # seeded
    assert not np.array_equal(data.split_rows(n, val_pct=0.1, test_pct=0.2, seed=7).val, held.val)


def test_encoding_round_trips(ratings):
    frame = ratings.frame
    users, movies = ratings.decode(frame.user.to_numpy(), frame.movie.to_numpy())
    assert np.array_equal(users, frame.userId.to_numpy())
    assert np.array_equal(movies, frame.movieId.to_numpy())
    assert frame.user.max() == ratings.n_users - 1 and frame.movie.max() == ratings.n_movies - 1
    assert np.array_equal(ratings.encode_movies(ratings.movie_ids), np.arange(ratings.n_movies))


def test_crosstab_matches_the_lesson(ratings):
    table = data.crosstab(ratings)
    assert list(table.columns) == [
        1,
        110,
        260,
        296,
        318,
        356,
        480,
        527,
        589,
        593,
        608,
        1196,
        1198,
        1270,
        2571,
    ]
    assert table.shape == (15, 15)
    assert table.index[0] == 15
    assert (table.loc[15, 1], table.loc[15, 110], table.loc[15, 260]) == (2.0, 3.0, 5.0)


def test_digest_depends_on_content_not_format(ratings, small_dir, tmp_path):
    small = data.load_ratings(small_dir)
    frame = pd.read_csv(small_dir / "ratings.csv")
    frame.to_csv(tmp_path / "ratings.csv", index=False, lineterminator="\n", float_format="%.3f")
    assert data.load_ratings(tmp_path / "ratings.csv").digest == small.digest
    frame.loc[0, "rating"] = 1.0 if frame.loc[0, "rating"] != 1.0 else 2.0
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    assert data.load_ratings(tmp_path / "ratings.csv").digest != small.digest
    assert small.digest != ratings.digest


def test_loads_a_file_a_folder_and_a_zip(small_dir, tmp_path):
    from_folder = data.load_ratings(small_dir)
    from_file = data.load_ratings(small_dir / "ratings.csv")
    with zipfile.ZipFile(tmp_path / "ml.zip", "w") as zf:
        zf.write(small_dir / "ratings.csv", "ml/ratings.csv")
    from_zip = data.load_ratings(tmp_path / "ml.zip")
    assert len(from_folder.frame) == len(from_file.frame) == len(from_zip.frame) == 3000
    assert from_folder.digest == from_file.digest == from_zip.digest
    assert from_folder.titles is not None and from_zip.titles is None
    assert from_zip.title(1) == "movie 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("userId,movieId\n1,2\n", "missing column(s) rating"),
        ("userId,movieId,rating\n1,2,4.0\n1,3,abc\n", "bad rating 'abc' on data row 2"),
        ("userId,movieId,rating\n1,2,4.0\nx,3,3.0\n", "bad userId 'x' on data row 2"),
        ("userId,movieId,rating\n1,2,4.0\n1,3,\n", "bad rating (empty) on data row 2"),
        ("userId,movieId,rating\n1,2,4.0\n1,2,3.0\n2,2,1.0\n", "1 duplicate (userId, movieId) pair(s)"),
        ("userId,movieId,rating\n1,2,4.0\n", "at least 2 are needed"),
        ("", "cannot read"),
    ],
)
def test_bad_ratings_files_get_one_clear_error(tmp_path, text, message):
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=None) as err:
        data.load_ratings(path)
    assert message in str(err.value)


def test_missing_ratings_path(tmp_path):
    with pytest.raises(UserError, match="ratings not found"):
        data.load_ratings(tmp_path / "nope.csv")
    with pytest.raises(UserError, match="no MovieLens ratings in"):
        data.load_ratings(tmp_path)
