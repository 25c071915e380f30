"""``python -m tasks.cli``: the same as the ``beatkeeper`` console script."""
from tasks.cli import main

main(prog_name="beatkeeper")
