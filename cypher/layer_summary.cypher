// Per layer: distinct patterns, instances, errors and the largest pattern's support.
// Parameters: $run (string).
// Columns: layer (int), patterns (int), instances (int), errors (int), max_support (int).
MATCH (p:Pattern)
WHERE p.run = $run
RETURN p.layer AS layer, count(p) AS patterns, sum(p.support) AS instances,
       sum(p.errors) AS errors, max(p.support) AS max_support
ORDER BY layer
