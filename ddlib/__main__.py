import sys

from ddlib.chapters.commands import COMMANDS
from ddlib.run.cli import EXTRA, main

EXTRA.update(COMMANDS)  # `claims` reads the chapters' studies: a layer above the run CLI
sys.exit(main())
