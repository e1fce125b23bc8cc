// LadybugDB catalogue: the properties of the Instance table, to upgrade stores made before a column existed.
// Parameters: none. Columns: name (string).
CALL table_info('Instance') RETURN name
