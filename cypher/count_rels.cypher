// Relationship count of one type, over all runs (for `apd store check` and `compact`).
// Template: {table} a relationship type, {src} and {dst} its end labels, all from the schema.
// Parameters: none. Columns: edges (int).
MATCH (a:{src})-[r:{table}]->(b:{dst})
RETURN count(r) AS edges
