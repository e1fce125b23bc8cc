// The specialization of every blanket on every stored plane of a run, as `apd mbh` measured
// it (MEASURED edges): what the report's plane picture captions its red blanket with.
// Parameters: $run (string).
// Columns: plane (string, Plane uid), anchors (string, "i,j,k"), class (int), coverage (float),
//          greedy (string), s (float, on this plane), area (float, the blanket's area on it);
//          ordered by plane, coverage, class.
MATCH (p:Plane)-[m:MEASURED]->(b:Blanket)
WHERE p.run = $run
RETURN p.uid AS plane, p.anchors AS anchors, b.class AS class, b.coverage AS coverage, b.greedy AS greedy,
       m.s AS s, m.area AS area
ORDER BY plane, coverage, class
