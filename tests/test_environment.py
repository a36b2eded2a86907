"""Install contract: environment.yml agrees with pyproject, MXNet imports, d2l sits beside d2lrnn."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


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
            assert req.specifier.contains(version), f"environment.yml pins {req.name}=={version}, pyproject wants {req}"
            checked.append(req.name)
    assert {"mxnet", "numpy"} <= set(checked)
    assert f"{python}.0" in __import__("packaging.specifiers").specifiers.SpecifierSet(project["requires-python"])
    assert "-e ." in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"][-1]["pip"]


def test_d2l_pins_agree_with_ours():
    """d2l 1.0.3 pins numpy 1.23.5: that must satisfy our numpy range on the conda Python."""
    _, pins = _conda_pins()
    assert str(next(iter(pins["numpy"].specifier)).version) == "1.23.5"


def test_plain_import_mxnet_works_without_d2lrnn():
    import numpy

    if tuple(int(x) for x in numpy.__version__.split(".")[:2]) >= (1, 24):
        pytest.skip("numpy >= 1.24 (Python 3.12): MXNet needs d2lrnn's shim, by design")
    subprocess.run([sys.executable, "-c", "import mxnet; mxnet.nd.ones(2).asnumpy()"], check=True)


@pytest.mark.skipif(importlib.util.find_spec("d2l") is None, reason="d2l not installed (pip install --no-deps d2l==1.0.3)")
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
