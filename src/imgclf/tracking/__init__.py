"""Run history: every run directory logged to an MLflow store (store.py); ``imgclf runs`` reads it back."""
