// LadybugDB bulk relationship load of some of the declared properties (the others stay null,
// e.g. ACTIVATES distances before `apd neighbours`): frame columns are src uid, dst uid, then
// the named properties.
// Template: {table} a relationship type from the schema; {columns} its properties in the frame.
// Parameters: $df (DataFrame). Columns: none.
COPY {table}({columns}) FROM $df
