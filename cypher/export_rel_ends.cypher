// A run's relationships of one type as source and target uids, for `apd export`.
// Template: {table} is a relationship type and {src}, {dst} its end labels, all from the schema.
// Parameters: $run (string).
// Columns: src (string), dst (string); ordered by src, dst (one relationship per pair).
MATCH (a:{src})-[e:{table}]->(b:{dst})
WHERE a.run = $run
RETURN a.uid AS src, b.uid AS dst
ORDER BY src, dst
