"""`python -m d2lrnn ...` runs the command line."""
from .cli import run_as_program

run_as_program()
