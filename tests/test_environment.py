"""Install contract: environment.yml agrees with pyproject, MXNet imports, d2l sits beside d2lrnn."""
import importlib.metadata
import importlib.util
import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from helpers import ROOT


def _pyproject():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    return python.split("=")[1], {Requirement(r).name: Requirement(r) for r in pip if not r.startswith("-e")}


def test_environment_yml_pins_satisfy_pyproject():
    python, pins = _conda_pins()
    project = _pyproject()["project"]
    marker_env = {"python_version": python, "python_full_version": python + ".0"}
    checked = []
    for line in project["dependencies"]:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate(marker_env):
            continue
        if req.name in pins:
            version = str(next(iter(pins[req.name].specifier)).version)
            assert req.specifier.contains(version), f"environment.yml: {version}, pyproject: {req}"
            checked.append(req.name)
    assert {"mxnet", "numpy"} <= set(checked)
    assert f"{python}.0" in SpecifierSet(project["requires-python"])
    pip = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"][-1]["pip"]
    assert "-e .[notebooks]" in pip  # the package itself, with what every notebook needs


def _d2l_pins():
    """{name: pinned version} from the installed d2l's own metadata (skip the test without d2l)."""
    try:
        requires = importlib.metadata.requires("d2l") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("d2l not installed (pip install --no-deps d2l==1.0.3)")
    return {r.name: str(next(iter(r.specifier)).version) for r in map(Requirement, requires) if r.specifier}


def test_d2l_pins_agree_with_ours():
    """d2l 1.0.3 (the book's package, installed beside ours) pins exact versions: environment.yml must
    pin the same ones, and those must satisfy pyproject's ranges on the conda Python."""
    d2l = _d2l_pins()
    assert importlib.metadata.version("d2l") == "1.0.3" and d2l["numpy"] == "1.23.5"
    python, pins = _conda_pins()
    marker_env = {"python_version": python, "python_full_version": python + ".0"}
    ours = {r.name: r for r in map(Requirement, _pyproject()["project"]["dependencies"])
            if not r.marker or r.marker.evaluate(marker_env)}
    shared = sorted(set(d2l) & set(pins))
    assert {"numpy", "matplotlib", "jupyter"} <= set(shared), shared
    for name in shared:
        assert str(next(iter(pins[name].specifier)).version) == d2l[name], f"environment.yml: {pins[name]}"
        if name in ours:
            assert ours[name].specifier.contains(d2l[name]), f"d2l: {d2l[name]}, pyproject: {ours[name]}"


@pytest.mark.slow  # a fresh interpreter
def test_plain_import_mxnet_works_without_d2lrnn():
    import numpy

    if tuple(int(x) for x in numpy.__version__.split(".")[:2]) >= (1, 24):
        pytest.skip("numpy >= 1.24 (Python 3.12): MXNet needs d2lrnn's shim, by design")
    subprocess.run([sys.executable, "-c", "import mxnet; mxnet.nd.ones(2).asnumpy()"], check=True)


@pytest.mark.slow  # a fresh interpreter that trains
@pytest.mark.skipif(importlib.util.find_spec("d2l") is None,
                    reason="d2l not installed (pip install --no-deps d2l==1.0.3)")
def test_d2l_and_d2lrnn_import_side_by_side():
    code = ("import d2l, d2lrnn\n"
            "try:\n    from d2l import mxnet as book\nexcept ImportError as e:\n    print('partial', e)\n"
            "c = d2lrnn.corpus_from_text('the time traveller ' * 30, None)\n"
            "import mxnet as mx\n"
            "h = d2lrnn.train_and_predict_rnn(d2lrnn.rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 8, c[3],"
            " mx.cpu(), c[0], c[2], c[1], False, 1, 5, 1.0, 1.0, 2, 5, 5, ['the'])\n"
            "print(d2l.__version__, d2lrnn.__version__, h.perplexity[-1] < c[3])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("True")
