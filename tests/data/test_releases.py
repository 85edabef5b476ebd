"""`cfexp data fetch` against a server on loopback: a good archive, a corrupted one, one that stops halfway, and no
server at all. No test reaches the internet."""

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cfexp.cli.main import main
from cfexp.data import releases
from cfexp.data.ratings import load_ratings
from cfexp.errors import UserError

# tensorflow_datasets/url_checksums/movielens.txt (tensorflow-datasets 4.9.10), as published: url, size, SHA-256
GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
TFDS = [
    (f"{GROUPLENS}ml-25m.zip", 261978986, "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
    (f"{GROUPLENS}ml-latest-small.zip", 978202, "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
    (f"{GROUPLENS}ml-100k.zip", 4924029, "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    (f"{GROUPLENS}ml-1m.zip", 5917549, "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    (f"{GROUPLENS}ml-20m.zip", 198702078, "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
]


def ml_1m_like(size: int | None = None) -> bytes:
    """A zip laid out as ml-1m (ml-1m/ratings.dat), padded with a stored member to `size` bytes when asked."""

    def build(padding: int) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            rows = "".join(f"{u}::{m}::4::97830{u}{m}\n" for u in range(1, 6) for m in (1, 2))
            zf.writestr("ml-1m/ratings.dat", rows)
            zf.writestr("ml-1m/README", "x" * padding, compress_type=zipfile.ZIP_STORED)
        return buffer.getvalue()

    content = build(0)
    return content if size is None else build(size - len(content))


class Archives(BaseHTTPRequestHandler):
    served: ClassVar[dict[str, tuple[bytes, str]]] = {}  # path -> (content, how: good | cut)
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        self.hits.append(self.path)
        if self.path not in self.served:
            self.send_error(404)
            return
        content, how = self.served[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content if how == "good" else content[: len(content) // 2])
        self.wfile.flush()
        if how == "cut":
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    Archives.served, Archives.hits = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Archives)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror"
    httpd.shutdown()
    httpd.server_close()


def release_of(content: bytes) -> releases.Release:
    return releases.Release("ml-1m", len(content), hashlib.sha256(content).hexdigest(), "a test archive")


def test_the_pinned_sizes_and_checksums_are_tensorflow_datasets(monkeypatch):
    monkeypatch.delenv("CFEXP_MOVIELENS_URL", raising=False)
    published = {url: (size, sha256) for url, size, sha256 in TFDS}
    pinned = {r.url(): (r.size, r.sha256) for r in releases.RELEASES.values()}
    assert pinned == published


def test_a_good_archive_is_fetched_checked_and_then_reused(server, tmp_path):
    content = ml_1m_like()
    Archives.served["/mirror/ml-1m.zip"] = (content, "good")
    path, downloaded = releases.fetch(release_of(content), tmp_path, server)
    assert downloaded and path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-1m.zip"]
    again, downloaded = releases.fetch(release_of(content), tmp_path, server)
    assert again == path and not downloaded and Archives.hits == ["/mirror/ml-1m.zip"]  # the cache, not the server
    assert len(load_ratings(path).frame) == 10


@pytest.mark.parametrize("how", ["corrupted", "cut"])
def test_a_corrupted_or_cut_archive_leaves_nothing_in_the_cache(server, tmp_path, how):
    content = ml_1m_like()
    sent = content[:-10] + b"0123456789" if how == "corrupted" else content
    Archives.served["/mirror/ml-1m.zip"] = (sent, "good" if how == "corrupted" else "cut")
    with pytest.raises(UserError) as error:
        releases.fetch(release_of(content), tmp_path, server)
    said = str(error.value)
    assert "nothing kept" in said and "\n" not in said
    assert ("SHA-256 differs" in said) if how == "corrupted" else ("cannot fetch ml-1m" in said)
    assert list(tmp_path.iterdir()) == []  # no archive, and no partial download a later run could read


def test_with_no_server_one_line_names_the_release_its_url_and_where_to_put_a_copy(tmp_path):
    with pytest.raises(UserError) as error:
        releases.fetch(releases.RELEASES["ml-100k"], tmp_path, "http://127.0.0.1:9/nowhere")
    said = str(error.value)
    assert "ml-100k" in said and "http://127.0.0.1:9/nowhere/ml-100k.zip" in said
    assert f"put it at {tmp_path / 'ml-100k.zip'}" in said
    assert list(tmp_path.iterdir()) == []


FULL_DISK = """
import resource, signal, sys
from cfexp.cli.main import main
from cfexp.data import releases
from cfexp.errors import UserError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]) // 2, int(sys.argv[2]) // 2))
release = releases.Release("ml-1m", int(sys.argv[2]), sys.argv[3], "a test archive")
try:
    releases.fetch(release, __import__("pathlib").Path(sys.argv[4]), sys.argv[1])
except UserError as exc:
    print(exc, file=sys.stderr)
    raise SystemExit(2)
"""


def test_a_disk_that_fills_up_mid_download_leaves_nothing(server, tmp_path):
    import subprocess
    import sys

    content = ml_1m_like(200_000)
    Archives.served["/mirror/ml-1m.zip"] = (content, "good")
    release = release_of(content)
    args = [server, str(release.size), release.sha256, str(tmp_path)]
    done = subprocess.run([sys.executable, "-c", FULL_DISK, *args], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"cannot write {tmp_path / 'ml-1m.zip'}")
    assert "nothing kept" in done.stderr and list(tmp_path.iterdir()) == []


def test_too_little_free_space_is_refused_before_downloading(server, tmp_path, monkeypatch):
    import shutil

    Archives.served["/mirror/ml-1m.zip"] = (ml_1m_like(), "good")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 5))
    with pytest.raises(UserError, match="5 bytes free and ml-1m needs"):
        releases.fetch(release_of(ml_1m_like()), tmp_path, server)
    assert Archives.hits == []


def test_the_command_refuses_what_is_not_the_pinned_archive(server, tmp_path, monkeypatch, capsys):
    Archives.served["/mirror/ml-100k.zip"] = (ml_1m_like(), "good")  # not GroupLens' ml-100k
    monkeypatch.setenv("CFEXP_MOVIELENS_URL", server)
    monkeypatch.setenv("CFEXP_DATA", str(tmp_path / "cache"))
    assert main(["data", "fetch", "ml-100k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cfexp: error:") and "SHA-256 differs" in err[-1]
    assert list((tmp_path / "cache").iterdir()) == []
    assert main(["data", "fetch", "ml-5m"]) == 2
    assert "unknown release 'ml-5m'" in capsys.readouterr().err


def test_an_experiment_names_a_fetched_release_by_name(tmp_path, monkeypatch, workdir, capsys):
    monkeypatch.setenv("CFEXP_DATA", str(tmp_path / "cache"))
    assert main(["sweep", "experiments/quickstart.toml", "--set", "data.ratings=ml-1m"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    url = releases.RELEASES["ml-1m"].url()  # the mirror's: loopback_only
    assert err == [f"cfexp: error: ml-1m is not fetched: run `cfexp data fetch ml-1m` (it downloads {url})"]
    # a copy of the pinned size put in the cache by hand is read by name
    (tmp_path / "cache").mkdir()
    Path(tmp_path / "cache" / "ml-1m.zip").write_bytes(ml_1m_like(releases.RELEASES["ml-1m"].size))
    assert len(load_ratings("ml-1m").frame) == 10
    assert main(["data", "fetch"]) == 0
    assert "ml-1m" in capsys.readouterr().out
    assert main(["sweep", "experiments/quickstart.toml", "--set", "data.ratings=ml-2m"]) == 2
    assert "unknown release 'ml-2m'" in capsys.readouterr().err
