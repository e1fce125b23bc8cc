// LadybugDB bulk relationship load: frame columns are src uid, dst uid, then the declared properties.
// Template: {table} a relationship type from the schema.
// Parameters: $df (DataFrame). Columns: none.
COPY {table} FROM $df
