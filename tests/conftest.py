"""Shared fixtures: tiny inline text, the course corpora from ../shared/data, an isolated cache, a local
web server.

Plain shared names (paths, contexts, the lecture's notebook cell, random weights) are in helpers.py;
ROOT, SHARED_DATA and TINY_TEXT are importable from here too.
"""
import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from helpers import ROOT, SHARED_DATA, TINY_TEXT

# Tests read the corpus from ../shared/data unless told otherwise, and never touch the user's cache.
if "D2LRNN_DATA_DIR" not in os.environ and (SHARED_DATA / "timemachine.txt").is_file():
    os.environ["D2LRNN_DATA_DIR"] = str(SHARED_DATA)

import d2lrnn  # noqa: E402

__all__ = ["ROOT", "SHARED_DATA", "TINY_TEXT"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Point the download cache at a temporary folder for every test."""
    monkeypatch.setenv("D2LRNN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state."""
    d2lrnn.set_seed(0)


@pytest.fixture
def tiny():
    """The lecture 4-tuple built from a few lines of The Time Machine."""
    return d2lrnn.corpus_from_text(TINY_TEXT, num_chars=None)


@pytest.fixture
def corpus_dir():
    """Folder holding the real timemachine.txt (skip if the course data is absent)."""
    folder = os.environ.get("D2LRNN_DATA_DIR")
    if not folder or not (Path(folder) / "timemachine.txt").is_file():
        pytest.skip("set D2LRNN_DATA_DIR to the folder with timemachine.txt (../shared/data)")
    return Path(folder)


@pytest.fixture
def shakespeare():
    """The path of Tiny Shakespeare in ../shared/data (skip if it is absent)."""
    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip("needs ../shared/data/tinyshakespeare.txt")
    return path


@pytest.fixture
def no_local_copies(tmp_path, monkeypatch):
    """No corpus in the environment variable's folder or the repository's data/: only a download finds one."""
    monkeypatch.delenv("D2LRNN_DATA_DIR", raising=False)
    monkeypatch.setattr(d2lrnn.data, "REPO_DATA_DIR", tmp_path / "repo-data")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request lines in the test output
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serve the files of a temporary folder on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
