"""A run of the pipeline: the run directory's files (rundir.py), the steps (steps.py), the featurizer
of a run (featurizer.py), classifier trainers (trainers.py) and the evaluate step (evaluate.py)."""
