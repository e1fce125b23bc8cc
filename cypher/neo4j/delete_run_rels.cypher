// Neo4j: remove one run's relationships of one type in bounded transactions of 10,000
// (backend variant: a whole run's delete in one transaction would hold it all in the
// server's transaction state). Runs as an auto-commit query.
// Template: {table} a relationship type, {src} and {dst} its end labels, all from the schema.
// Parameters: $run (string). Columns: none.
MATCH (a:{src})-[e:{table}]->(b:{dst})
WHERE a.run = $run
CALL (e) {
  DELETE e
} IN TRANSACTIONS OF 10000 ROWS
