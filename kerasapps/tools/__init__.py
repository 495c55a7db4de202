"""Tools built on the stage runner, never beside it: recipe information (:mod:`.info`), random search
(:mod:`.tune`), the diagnostics (:mod:`.diagnose`, :mod:`.initialization`) and pictures of filters and
feature maps (:mod:`.filter_grids`)."""
