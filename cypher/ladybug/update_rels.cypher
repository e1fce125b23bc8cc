// LadybugDB bulk relationship property update: set one property on existing relationships,
// matched by their end nodes' uids.
// Template: {table} a relationship type, {src} and {dst} its end labels, {prop} one of its
// properties, all from the schema.
// Parameters: $df (DataFrame with columns s = source uid, d = target uid, v = value). Columns: none.
LOAD FROM $df
MATCH (a:{src} {uid: s})-[e:{table}]->(b:{dst} {uid: d})
SET e.{prop} = v
