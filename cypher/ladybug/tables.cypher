// LadybugDB catalogue: the names of every table in the store (backend variant: Neo4j has no tables).
// Parameters: none. Columns: name (string).
CALL show_tables() RETURN name
