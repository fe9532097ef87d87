"""Images → pooled CNN features: backbones and their preprocessing, inference engines, int8, the feature cache."""
