"""Beyond one machine: predict and featurize on a Ray cluster (the optional extra ``imgclf[ray]``).

``cluster.py`` imports Ray (the only module of imgclf that does) and connects to a cluster;
``workers.py`` holds the actors of Ray Data's actor pool, each loading the bundle or the run's
featurizers once; ``predict.py`` and ``featurize.py`` are the driver's side of ``imgclf predict --ray``
and ``imgclf featurize --ray``; ``output.py`` the resumable JSONL / Parquet predictions file;
``datasets.py`` what a user's own Ray pipeline calls (``imgclf.ray.predict``).
"""
