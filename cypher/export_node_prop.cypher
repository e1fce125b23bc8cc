// One property of a run's nodes of one label, for `apd export` (a column at a time, so the
// same statement serves every label on both backends).
// Template: {table} is a node label and {prop} one of its properties, both from the schema.
// Parameters: $run (string).
// Columns: uid (string), value (the property); ordered by uid.
MATCH (n:{table})
WHERE n.run = $run
RETURN n.uid AS uid, n.{prop} AS value
ORDER BY uid
