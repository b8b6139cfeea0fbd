"""Recipes: how the models same-edge ships were made (installed as ``same_edge_recipes``)."""
