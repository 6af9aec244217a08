"""Reports: barcodes, figures and the self-contained HTML page of a run."""
