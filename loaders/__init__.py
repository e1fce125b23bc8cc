"""From models and data to the graph: datasets, training, pattern recording, ingest."""
