// Edges of the APD between consecutive layers: how many instances (and errors) go from a to b.
// Parameters: $run (string).
// Columns: layer (int, of a), src (key of a), dst (key of b), count (int), errors (int).
MATCH (a:Pattern)-[e:NEXT]->(b:Pattern)
WHERE a.run = $run
RETURN a.layer AS layer, a.key AS src, b.key AS dst, e.count AS count, e.errors AS errors
ORDER BY layer, count DESC, src, dst
