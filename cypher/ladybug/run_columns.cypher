// LadybugDB catalogue: the properties of the Run table, to upgrade stores made before a column existed.
// Parameters: none. Columns: name (string).
CALL table_info('Run') RETURN name
