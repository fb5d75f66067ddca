import sys

from ddlib.chapters.check import COMMAND as CHECK
from ddlib.run.cli import main

sys.exit(main(commands=(CHECK,)))
