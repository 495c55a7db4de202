"""Training: the run directory (:mod:`.rundir`, :mod:`.checkpoints`, :mod:`.curves`), the one stage runner
(:mod:`.stage`) and the run across stages (:mod:`.train`, :mod:`.evaluate`), with what a stage composes:
callbacks, schedules, optimizers, losses, weight penalties, monitors, distribution and L-BFGS."""
