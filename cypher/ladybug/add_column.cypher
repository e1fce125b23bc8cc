// Upgrade a store made before a property existed: add it (null on existing rows).
// Template: {table} a node or relationship table, {prop} one of its properties, {type} its
// LadybugDB type, all from the schema.
// Parameters: none. Columns: none.
ALTER TABLE {table} ADD {prop} {type}
