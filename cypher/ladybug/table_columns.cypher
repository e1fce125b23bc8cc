// LadybugDB catalogue: the properties of one table, to upgrade stores made before a property existed.
// Template: {table} a node or relationship table of the schema, filled as a string literal.
// Parameters: none. Columns: name (string).
CALL table_info({table}) RETURN name
