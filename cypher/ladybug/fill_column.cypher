// Upgrade a store made before a node property existed: give the existing nodes its value for
// them (e.g. Instance.row -1: the source row is unknown; Run.source '': an ingested run).
// Template: {table} a node table, {prop} the property, both from the schema.
// Parameters: $value. Columns: none.
MATCH (n:{table}) SET n.{prop} = $value
