import os
import shutil
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from cfexp.data import ratings as data
from cfexp.errors import UserError
from cfexp.services.cluster import Services, pg_bin


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch, tmp_path):
    """No test can reach the internet: unless it points cfexp at its own loopback server, the MovieLens mirror is a
    closed port on loopback (subprocesses inherit it), and the release cache a temporary folder."""
    monkeypatch.setenv("CFEXP_MOVIELENS_URL", "http://127.0.0.1:9/no-internet")
    monkeypatch.setenv("CFEXP_DATA", str(tmp_path / "default-cache"))


@pytest.fixture(autouse=True)
def _tracking_uri_restored():
    """MLflow's set_tracking_uri sets MLFLOW_TRACKING_URI in the environment: a test's store must not become the
    next test's."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


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


@pytest.fixture(scope="session")
def services():
    """A running PostgreSQL and `mlflow server` (cfexp.services): CI's (`make services`, its folder in
    CFEXP_TEST_SERVICES_DIR), else a throwaway pair; skipped where PostgreSQL is not installed."""
    if os.environ.get("CFEXP_TEST_SERVICES_DIR"):
        yield Services(Path(os.environ["CFEXP_TEST_SERVICES_DIR"]))
        return
    try:
        pg_bin()
    except UserError as exc:
        pytest.skip(str(exc))
    folder = Path(tempfile.mkdtemp(prefix="cfexp-test-services-"))
    started = Services(folder)
    try:
        started.start()
        yield started
    finally:
        started.stop()
        shutil.rmtree(folder, ignore_errors=True)
