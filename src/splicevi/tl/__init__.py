"""Tools: embedding and clusters, QC, ranking and annotation of tables, contrasts, exports, metrics."""
