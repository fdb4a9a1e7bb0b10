"""Training: data in, fit, evaluate, publish; the scheduled retraining job."""
