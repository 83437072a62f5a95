"""``python -m bench.harness.cli``: the same as the ``bench`` script."""
from . import main

main()
