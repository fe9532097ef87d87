"""The data doctor: mislabelled images, outliers, near duplicates and train/test leakage, found
from cached features, without running a network again.

- :mod:`.labels` — out-of-fold probabilities and confident learning (suspected label errors);
- :mod:`.outliers` — images far from every train image (k-nearest-neighbour cosine distance);
- :mod:`.pairs` — near-duplicate pairs by feature cosine and dhash: within a class, across
  classes, across the train/test split;
- :mod:`.examine` — all of them on one dataset, plus its health summary.

Everything here works on arrays; :mod:`imgclf.doctor.step` reads and writes the run directory.
"""
