"""Training, evaluation and data preparation for the Dozor comment classifier."""
