"""easyrec: feature columns and the recommendation model zoo (torch; tf.keras later)."""
