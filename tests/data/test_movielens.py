"""Every MovieLens release through --ratings, from its folder or its zip as GroupLens ships it, the format found
from the content. The fixtures are tiny files in each release's layout, written here."""

import zipfile

import pytest

from cfexp.data import ratings as data
from cfexp.errors import UserError

RATINGS = [(1, 10, 4.0), (1, 20, 3.0), (2, 10, 5.0), (2, 30, 2.0), (3, 20, 1.0)]
TITLES = {10: "Toy Story (1995)", 20: "Jumanji (1995)", 30: "Café au lait (1993)"}  # an accent: latin-1 in old files


def ml_100k(folder):
    (folder / "u.data").write_text("".join(f"{u}\t{m}\t{int(r)}\t881250949\n" for u, m, r in RATINGS))
    (folder / "u.item").write_bytes(
        "".join(f"{m}|{t}|01-Jan-1995||http://x|0|1\n" for m, t in TITLES.items()).encode("latin-1")
    )


def ml_1m(folder, encoding="latin-1"):
    (folder / "ratings.dat").write_text("".join(f"{u}::{m}::{int(r)}::978300760\n" for u, m, r in RATINGS))
    (folder / "movies.dat").write_bytes("".join(f"{m}::{t}::Comedy\n" for m, t in TITLES.items()).encode(encoding))


def ml_25m(folder):
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r},1147880044\n" for u, m, r in RATINGS)
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n" + "".join(f'{m},"{t}",Comedy\n' for m, t in TITLES.items()), encoding="utf-8"
    )


RELEASES = {"ml-100k": ml_100k, "ml-1m": ml_1m, "ml-10m": lambda f: ml_1m(f, "utf-8"), "ml-25m": ml_25m}


def zipped(folder, name):
    """The release as GroupLens ships it: a zip with one top folder."""
    path = folder.parent / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in folder.iterdir():
            zf.write(file, f"{name}/{file.name}")
    return path


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_a_release_reads_from_its_folder_and_its_zip_alike(tmp_path, release):
    folder = tmp_path / release
    folder.mkdir()
    RELEASES[release](folder)
    from_folder, from_zip = data.load_ratings(folder), data.load_ratings(zipped(folder, release))
    for ratings in (from_folder, from_zip):
        assert ratings.frame[["userId", "movieId", "rating"]].values.tolist() == [list(r) for r in RATINGS]
        assert (ratings.n_users, ratings.n_movies) == (3, 3)
        assert ratings.title(30) == "Café au lait (1993)"
    assert from_folder.digest == from_zip.digest


def test_a_single_ratings_file_is_recognised_by_its_content(tmp_path):
    for release in ("ml-100k", "ml-1m"):
        folder = tmp_path / release
        folder.mkdir()
        RELEASES[release](folder)
        name = "u.data" if release == "ml-100k" else "ratings.dat"
        renamed = folder / "renamed.txt"
        (folder / name).rename(renamed)
        assert len(data.load_ratings(renamed).frame) == len(RATINGS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a;b;c\n1;2;3\n", "is not a MovieLens ratings file"),
        ("", "empty"),
        ("1::2::x::4\n1::3::4::5\n", "bad rating 'x' on data row 1"),
    ],
)
def test_a_file_in_no_known_format_gets_one_line_naming_the_formats(tmp_path, content, message):
    path = tmp_path / "ratings.txt"
    path.write_text(content)
    with pytest.raises(UserError) as err:
        data.load_ratings(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    if "not a MovieLens" in message:
        assert "ratings.dat (ml-1m, ml-10m)" in str(err.value) and "u.data (ml-100k)" in str(err.value)


def test_a_folder_without_ratings_names_what_it_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(UserError, match=r"no MovieLens ratings in .*ratings\.csv .*ratings\.dat .*u\.data"):
        data.load_ratings(tmp_path)
