import sys

from ddlib.chapters.check import COMMAND as CHECK
from ddlib.chapters.commands import COMMAND as CLAIMS
from ddlib.run.cli import main

# `check` and `claims` read the chapters' grids: a layer above the run CLI, handed in here
sys.exit(main(commands=(CHECK, CLAIMS)))
