import sys

from ddlib.run.cli import main

sys.exit(main())
