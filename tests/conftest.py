import shutil
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from cfexp import data


@pytest.fixture(scope="session")
def ratings() -> data.Ratings:
    """The embedded ml-latest-small, loaded once."""
    return data.load_ratings()


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory) -> Path:
    """A MovieLens-style folder with the first 3,000 ratings of the embedded dataset, and its movies.csv."""
    folder = tmp_path_factory.mktemp("small")
    with (
        resources.files("cfexp.datasets").joinpath("ml-latest-small.zip").open("rb") as fh,
        zipfile.ZipFile(fh) as zf,
    ):
        lines = zf.read("ml-latest-small/ratings.csv").decode().splitlines()
        (folder / "ratings.csv").write_text("\n".join(lines[:3001]) + "\n")
        (folder / "movies.csv").write_bytes(zf.read("ml-latest-small/movies.csv"))
    return folder


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in a temporary folder with the experiments copied in, so that outputs land there."""
    shutil.copytree(Path(__file__).parents[1] / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store, under this folder
    return tmp_path
