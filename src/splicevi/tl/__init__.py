"""Tools: clustering, differential analysis helpers and evaluation metrics."""
