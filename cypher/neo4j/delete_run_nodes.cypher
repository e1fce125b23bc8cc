// Neo4j: remove one run's nodes of one label with their relationships, in bounded
// transactions of 10,000 nodes (backend variant: a whole run's delete in one transaction
// would hold it all in the server's transaction state). Runs as an auto-commit query.
// Template: {table} is a node label from the schema (an identifier, never a user value).
// Parameters: $run (string). Columns: none.
MATCH (n:{table})
WHERE n.run = $run
CALL (n) {
  DETACH DELETE n
} IN TRANSACTIONS OF 10000 ROWS
