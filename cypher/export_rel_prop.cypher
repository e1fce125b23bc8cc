// One property of a run's relationships of one type, for `apd export`.
// Template: {table} is a relationship type, {src}, {dst} its end labels and {prop} one of its
// properties, all from the schema.
// Parameters: $run (string).
// Columns: src (string), dst (string), value (the property); ordered by src, dst.
MATCH (a:{src})-[e:{table}]->(b:{dst})
WHERE a.run = $run
RETURN a.uid AS src, b.uid AS dst, e.{prop} AS value
ORDER BY src, dst
