"""``python -m same_edge``: the same-edge command line."""

from .cli import run

run()
