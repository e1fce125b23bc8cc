// ACTIVATES edges per run and layer: every instance has exactly one per hidden layer.
// Parameters: none. Columns: run (string), layer (int), edges (int); ordered by run, layer.
MATCH (i:Instance)-[a:ACTIVATES]->(p:Pattern)
RETURN i.run AS run, a.layer AS layer, count(a) AS edges
ORDER BY run, layer
