"""Fitting a style's global parameters to unlabeled real captchas (`synthstream fit`): the search space
(space.py), the label-free objective (objective.py), the searcher (search.py), the rounds (loop.py) and the
written style (write.py); wake.py: the wake-phase objective (measured, not searched with: docs/fit.md)."""
