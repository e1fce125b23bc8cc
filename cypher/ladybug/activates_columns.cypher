// LadybugDB catalogue: the properties of the ACTIVATES table, to upgrade stores made before
// `apd neighbours` stored distances on it.
// Parameters: none. Columns: name (string).
CALL table_info('ACTIVATES') RETURN name
