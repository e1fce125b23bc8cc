// Distinct patterns per hidden layer for several runs (snapshots of one model, for `apd evolution`).
// Parameters: $runs (list of string).
// Columns: run (string), layer (int), patterns (int).
MATCH (p:Pattern)
WHERE p.run IN $runs
RETURN p.run AS run, p.layer AS layer, count(p) AS patterns
ORDER BY run, layer
