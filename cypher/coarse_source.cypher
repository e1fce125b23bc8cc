// Whether a run is a coarse APD (`apd coarsen`): the run it was derived from and its neurons.
// Parameters: $run (string).
// Columns: source (string, empty for a run made by ingest), neurons (string, "layer:i,j,...;..." or empty).
MATCH (r:Run)
WHERE r.run = $run
RETURN coalesce(r.source, '') AS source, coalesce(r.neurons, '') AS neurons
