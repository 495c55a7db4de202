"""Recipes of the deep-learning canon."""
