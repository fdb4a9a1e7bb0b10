"""i-Score shared core: features, model, artifact registry, scoring and settings."""
