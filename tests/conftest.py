"""Shared fixtures: tiny inline text, the course corpus from ../shared/data, an isolated cache."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests read the corpus from ../shared/data unless told otherwise, and never touch the user's cache.
if "D2LRNN_DATA_DIR" not in os.environ and (SHARED_DATA / "timemachine.txt").is_file():
    os.environ["D2LRNN_DATA_DIR"] = str(SHARED_DATA)

import d2lrnn  # noqa: E402

TINY_TEXT = ("The Time Traveller (for so it will be convenient to speak of him)\n"
             "was expounding a recondite matter to us. His grey eyes shone and\n"
             "twinkled, and his usually pale face was flushed and animated.\n") * 4


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
