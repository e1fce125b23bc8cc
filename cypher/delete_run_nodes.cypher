// Remove one run's nodes of one label, with their relationships.
// Template: {table} is a node label from the schema (an identifier, never a user value).
// Parameters: $run (string). Columns: none.
MATCH (n:{table})
WHERE n.run = $run
DETACH DELETE n
