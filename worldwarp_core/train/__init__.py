"""ST-Diff training: data preparation, spatio-temporal noise (eq. 5-8), the accelerate loop."""
