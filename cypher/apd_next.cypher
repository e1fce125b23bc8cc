// NEXT edges of one run's APD per source layer: pattern at layer l -> pattern at layer l+1.
// Parameters: $run (string).
// Columns: layer (int, source layer), edges (int), instances (int, summed count), errors (int).
MATCH (a:Pattern)-[e:NEXT]->(b:Pattern)
WHERE a.run = $run
RETURN a.layer AS layer, count(e) AS edges, sum(e.count) AS instances, sum(e.errors) AS errors
ORDER BY layer
