"""``python -m bench.corpus``: see :mod:`bench.corpus.generate`."""

import sys

from bench.corpus.generate import main

sys.exit(main())
