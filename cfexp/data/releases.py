"""MovieLens releases fetched from GroupLens into a cache folder (`cfexp data fetch NAME`), each archive's size and
SHA-256 pinned here, as tensorflow-datasets records them (`tensorflow_datasets/url_checksums/movielens.txt`).

The download is pooch's: it streams into a temporary file beside the cache's copy and moves it into place only when
the SHA-256 matches, so a checksum mismatch, a cut connection or a full disk leaves nothing that a later run would
read. The cache is `CFEXP_DATA`, else the user's cache folder (pooch.os_cache: ~/.cache/cfexp on Linux);
`CFEXP_MOVIELENS_URL` names a mirror that serves the same archives. No command fetches by itself: an experiment
that names a release (`data.ratings = "ml-1m"`) that is not in the cache is refused in one line that says how to
fetch it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cfexp.errors import UserError

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
LICENCE = (
    "MovieLens is GroupLens' (University of Minnesota), under its usage licence: research use only; no commercial "
    "use without their permission; acknowledge the data in any publication (F. Maxwell Harper and Joseph A. Konstan, "
    "2015, The MovieLens Datasets: History and Context, ACM TiiS 5(4), https://doi.org/10.1145/2827872); do not "
    "redistribute it, even modified, without their permission; no claim of their endorsement. The full terms are "
    "in the README of the archive."
)


@dataclass(frozen=True)
class Release:
    name: str
    size: int  # bytes of the zip
    sha256: str
    what: str

    @property
    def file(self) -> str:
        return f"{self.name}.zip"

    def url(self, base: str | None = None) -> str:
        return (base or os.environ.get("CFEXP_MOVIELENS_URL") or BASE_URL).rstrip("/") + "/" + self.file


RELEASES = {
    r.name: r
    for r in (
        Release(
            "ml-100k",
            4_924_029,
            "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            "100,000 ratings, 943 users, 1,682 movies (1998)",
        ),
        Release(
            "ml-1m",
            5_917_549,
            "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            "1,000,209 ratings, 6,040 users, 3,706 movies (2003)",
        ),
        Release(
            "ml-20m",
            198_702_078,
            "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            "20,000,263 ratings, 138,493 users, 26,744 movies (2015)",
        ),
        Release(
            "ml-25m",
            261_978_986,
            "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            "25,000,095 ratings, 162,541 users, 59,047 movies (2019)",
        ),
        Release(
            "ml-latest-small",
            978_202,
            "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            "today's small edition, 100,836 ratings (2018; the embedded one is the 2016 edition)",
        ),
    )
}
# `data.ratings = "ml-latest-small"` is the embedded 2016 edition; the fetched one is used by its path.
BY_NAME = {name: r for name, r in RELEASES.items() if name != "ml-latest-small"}


def cache_dir() -> Path:
    """Where fetched releases live: CFEXP_DATA, else the user's cache folder."""
    if os.environ.get("CFEXP_DATA"):
        return Path(os.environ["CFEXP_DATA"]).expanduser()
    import pooch

    return Path(pooch.os_cache("cfexp"))


def get_release(name: str) -> Release:
    if name not in RELEASES:
        raise UserError(f"unknown release {name!r}; cfexp fetches {', '.join(RELEASES)}")
    return RELEASES[name]


def cached(name: str) -> Path:
    """The cached archive of a release an experiment names; refused in one line when it has not been fetched."""
    release = RELEASES[name]
    path = cache_dir() / release.file
    if not path.is_file():
        raise UserError(f"{name} is not fetched: run `cfexp data fetch {name}` (it downloads {release.url()})")
    if path.stat().st_size != release.size:
        raise UserError(f"{path} is not the pinned {name} ({release.size:,} bytes): run `cfexp data fetch {name}`")
    return path


def fetch(release: Release, folder: Path | None = None, base_url: str | None = None) -> tuple[Path, bool]:
    """The release's archive in the cache, downloaded and checked when it is not there yet: (path, downloaded)."""
    import pooch
    import requests

    folder = folder or cache_dir()
    path, url = folder / release.file, release.url(base_url)
    if path.is_file() and pooch.file_hash(str(path)) == release.sha256:
        return path, False
    _make(folder)
    free = shutil.disk_usage(folder).free
    if free < release.size:
        raise UserError(f"{folder} has {free:,} bytes free and {release.name} needs {release.size:,}: nothing fetched")
    pooch.get_logger().setLevel(logging.WARNING)  # cfexp says what it fetches itself
    print(f"fetching {release.name} ({release.size:,} bytes) from {url} into {folder}", file=sys.stderr, flush=True)
    try:
        pooch.retrieve(url, f"sha256:{release.sha256}", release.file, folder, progressbar=sys.stderr.isatty())
    except ValueError as exc:  # pooch's checksum mismatch; its temporary file is gone
        if "hash" not in str(exc).lower():
            raise
        raise UserError(
            f"{url} did not send the pinned {release.name} (SHA-256 differs): nothing kept in {folder}"
        ) from None
    except requests.exceptions.RequestException as exc:
        reason = type(exc).__name__
        raise UserError(
            f"cannot fetch {release.name} from {url} ({reason}); nothing kept: download it by hand and put it at "
            f"{path}, or set CFEXP_MOVIELENS_URL to a mirror"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; nothing kept") from None
    return path, True


def _make(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the cache folder {folder}: {exc.strerror or exc}") from None
