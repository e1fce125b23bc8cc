// Node counts of one label, per run.
// Template: {table} is a node label from the schema.
// Parameters: none. Columns: run (string), nodes (int).
MATCH (n:{table})
RETURN n.run AS run, count(n) AS nodes
