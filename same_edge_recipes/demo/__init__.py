"""The recipe of the bundled demo model (``models/demo``): Debian music, training, held-out evaluation.

    python -m same_edge_recipes.demo.train --out build/demo-train --minutes 56 --seed 0
    python -m same_edge_recipes.demo.evaluate --model models/demo --data build/demo-train/data

Needs the ``recipe`` extra: ``pip install 'same-edge[recipe]'``.
"""
