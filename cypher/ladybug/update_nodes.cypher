// LadybugDB bulk property update: set one property on existing nodes, matched by uid.
// Template: {table} a node label, {prop} one of its properties, both from the schema.
// Parameters: $df (DataFrame with columns k = uid, v = value). Columns: none.
LOAD FROM $df
MATCH (n:{table} {uid: k})
SET n.{prop} = v
