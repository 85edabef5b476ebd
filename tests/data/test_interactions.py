"""Any interaction file: its columns named in [data], text ids kept, dates read, implicit feedback, one-line errors."""

import numpy as np
import pytest

from cfexp.cli.main import main
from cfexp.config.data_table import DataConfig
from cfexp.data.dataset import load_dataset
from cfexp.data.ratings import load_ratings
from cfexp.errors import UserError

TSV = (
    "who\twhat\tstars\twhen\n"
    "alice\tB0001\t5\t2020-01-02 10:00:00\n"
    "bob\tB0002\t3\t2020-01-01\n"
    "alice\tB0002\t4\t2019-12-31T23:00:00\n"
)


def test_named_columns_of_a_tsv_with_text_ids_and_dates(tmp_path):
    (tmp_path / "r.tsv").write_text(TSV)
    columns = {"user": "who", "item": "what", "rating": "stars", "timestamp": "when"}
    ratings = load_ratings(tmp_path / "r.tsv", columns, "\t", True)
    assert ratings.user_ids.tolist() == ["alice", "bob"] and ratings.movie_ids.tolist() == ["B0001", "B0002"]
    assert ratings.frame.rating.tolist() == [5.0, 3.0, 4.0] and not ratings.implicit
    assert ratings.timestamps.tolist() == [1577959200, 1577836800, 1577833200]  # UTC seconds
    again = load_ratings(tmp_path / "r.tsv", columns, "\t", True)
    assert again.digest == ratings.digest and again.timestamps_digest == ratings.timestamps_digest


def test_positions_without_a_header_and_a_two_character_separator(tmp_path):
    (tmp_path / "r.dat").write_text("7::100::3::978300760\n7::200::5::978300761\n8::100::4::978300762\n")
    ratings = load_ratings(tmp_path / "r.dat", {"user": 0, "item": 1, "rating": 2, "timestamp": 3}, "::", False)
    assert ratings.user_ids.tolist() == [7, 8] and ratings.movie_ids.tolist() == [100, 200]
    assert ratings.frame.rating.tolist() == [3.0, 5.0, 4.0]
    assert ratings.timestamps.tolist() == [978300760, 978300761, 978300762]


def test_without_a_rating_column_it_is_implicit_and_repeats_merge_into_the_first_in_time(tmp_path):
    rows = "u,i,t\na,x,30\nb,x,10\na,x,5\na,y,20\n"  # (a, x) twice: the one at second 5 is kept, in file order
    (tmp_path / "clicks.csv").write_text(rows)
    ratings = load_ratings(tmp_path / "clicks.csv", {"user": "u", "item": "i", "timestamp": "t"})
    assert ratings.implicit and ratings.repeats == 1
    assert list(zip(ratings.frame.userId, ratings.frame.movieId, ratings.timestamps, strict=True)) == [
        ("b", "x", 10),
        ("a", "x", 5),
        ("a", "y", 20),
    ]
    assert (ratings.frame.rating == 1.0).all()


def test_the_experiment_reads_it_through_data_settings(tmp_path):
    (tmp_path / "r.tsv").write_text(TSV)
    columns = {"user": "who", "item": "what", "rating": "stars", "timestamp": "when"}
    settings = DataConfig(
        ratings=str(tmp_path / "r.tsv"), columns=columns, separator="\t", split="temporal", test_pct=0.3, val_pct=0.5
    )
    dataset = load_dataset(settings)
    assert dataset.split.test.tolist() == [0]  # the latest (2020-01-02) is test
    assert np.array_equal(dataset.split.val, [1])


@pytest.mark.parametrize(
    ("content", "columns", "words"),
    [
        ("a,b\n1,2\n", {"user": "user", "item": "b"}, "has no column(s) user (it has a, b)"),
        ("u,i,r\n1,2,x\n3,4,5\n", {"user": "u", "item": "i", "rating": "r"}, "bad rating 'x' on data row 1"),
        ("u,i,t\n1,2,soon\n3,4,5\n", {"user": "u", "item": "i", "timestamp": "t"}, "bad timestamp 'soon' on data row"),
        ("u,i,r\n1,2,4\n1,2,5\n", {"user": "u", "item": "i", "rating": "r"}, "1 duplicate (userId, movieId) pair"),
        ("u,i\n,2\n3,4\n", {"user": "u", "item": "i"}, "empty userId on data row 1"),
    ],
)
def test_bad_files_are_refused_naming_what_is_wrong(tmp_path, content, columns, words):
    (tmp_path / "r.csv").write_text(content)
    with pytest.raises(UserError, match=None) as error:
        load_ratings(tmp_path / "r.csv", columns)
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ('data.columns={user="u"}', "columns needs a item column"),
        ('data.columns={user="u", item="i", price="p"}', "unknown role(s) price"),
        ('data.columns={user="u", item="u"}', "one column for two roles"),
        ("data.columns={user=0, item=1}", "must be a column name (the file has a header)"),
        ('data.separator=""', "separator must be one or more characters"),
    ],
)
def test_bad_column_settings_are_refused_in_one_line(workdir, capsys, setting, words):
    assert main(["sweep", "experiments/quickstart.toml", "--set", setting]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
