"""What pyproject.toml cannot say: the start-up file that lets `import mxnet` work before `import d2lrnn`.

d2lrnn-mxnet-numpy.pth goes into site-packages, where Python runs its one line at start-up: it loads
d2lrnn's tiny import hook (d2lrnn/_compat.py), which restores `numpy.bool` (gone in numpy 1.24, used by
MXNet 1.9.1) when MXNet is first imported, and does nothing else. A wheel carries it as a data file;
an editable install (`pip install -e .`) gets it through the hook below, as setuptools installs no
data files in editable mode.
"""
import os
import shutil
import sys
import sysconfig

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel

PTH = "d2lrnn-mxnet-numpy.pth"
SITE_PACKAGES = os.path.relpath(sysconfig.get_paths()["purelib"], sys.prefix)  # lib/python3.X/site-packages


class EditableWithStartupFile(editable_wheel):
    """An editable wheel that also carries the start-up file at its root (installed into site-packages)."""

    def _install_namespaces(self, installation_dir, pth_prefix):  # runs once, on the wheel's root folder
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copy(PTH, installation_dir)


setup(data_files=[(SITE_PACKAGES, [PTH])], cmdclass={"editable_wheel": EditableWithStartupFile})
