// Remove one run's relationships of one type (their end nodes stay): a re-run of the command
// that owns them replaces them.
// Template: {table} a relationship type, {src} and {dst} its end labels, all from the schema.
// Parameters: $run (string). Columns: none.
MATCH (a:{src})-[e:{table}]->(b:{dst})
WHERE a.run = $run
DELETE e
