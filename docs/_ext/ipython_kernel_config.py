# IPython settings of the kernels that execute the lessons for the website (not used anywhere else).
# docs/conf.py copies this file into <state>/ipython/profile_default/ and points IPYTHONDIR there.
import os

c = get_config()  # noqa: F821 (defined by IPython when it loads this file)

# Figures at twice the pixel density, shown at their usual size: sharp on high-resolution screens.
c.InlineBackend.figure_formats = {"retina"}
c.HistoryManager.enabled = False

# Run every lesson in one working folder per build mode, as a student runs them in one folder:
# notebook 5 then loads the model that notebook 4 trained and saved in runs/notebook04, instead of
# training its own. The folder lives beside the execution cache and is wiped with it.
_workdir = os.environ.get("D2LRNN_SITE_WORKDIR")
if _workdir:
    c.IPKernelApp.exec_lines = [f"__import__('os').chdir({_workdir!r})"]
