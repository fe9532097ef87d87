"""Refinement (fine-tuning), the 2017 sample's part 2: the network (model.py), its data (data.py),
the training loop (loop.py), checkpoints (checkpoint.py), several processes (distributed.py), and
the dnn / svm_on_refined trainers that turn a refined network into a bundle (train.py)."""
