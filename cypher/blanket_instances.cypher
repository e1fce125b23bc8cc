// The instances a blanket covers: those whose last-hidden-layer pattern satisfies the maximal
// pattern of class $label at coverage $coverage (any true label: other classes' instances
// inside the blanket show where it is not specific).
// Parameters: $run (string), $label (int, the blanket's class), $coverage (float).
// Columns: idx (int), label (int, true label), pred (int), correct (bool); ordered by idx.
MATCH (b:Blanket)-[:COVERS]->(p:Pattern)<-[:ACTIVATES]-(i:Instance)
WHERE b.run = $run AND b.class = $label AND abs(b.coverage - $coverage) < 1e-9 AND i.run = $run
RETURN i.idx AS idx, i.label AS label, i.pred AS pred, i.correct AS correct
ORDER BY idx
