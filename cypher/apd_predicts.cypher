// PREDICTS edges of one run's APD per predicted label: last-hidden-layer pattern -> label.
// Parameters: $run (string).
// Columns: label (int), edges (int), instances (int, summed count), errors (int).
MATCH (p:Pattern)-[e:PREDICTS]->(y:Label)
WHERE y.run = $run
RETURN y.value AS label, count(e) AS edges, sum(e.count) AS instances, sum(e.errors) AS errors
ORDER BY label
