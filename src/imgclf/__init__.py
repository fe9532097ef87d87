"""imgclf: transfer-learning image classifiers, offline on a CPU."""
__version__ = "0.1.0"
