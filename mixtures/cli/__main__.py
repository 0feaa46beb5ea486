"""``python -m mixtures.cli``: the ``mixtures`` command."""

import sys

from mixtures.cli import main

sys.exit(main())
