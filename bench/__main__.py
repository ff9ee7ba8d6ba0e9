"""`python -m bench`: run the whole benchmark and write bench/RESULTS.md."""

import sys

from bench.runner import main

sys.exit(main())
