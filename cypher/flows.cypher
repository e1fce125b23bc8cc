// Flows of a run: instances grouped by their patterns on up to six hidden layers, with
// strength (size), purity (share of the most frequent predicted label), errors and that label.
// Grouping by a tuple of patterns without list indexing or ordered collect (LadybugDB does
// not keep ORDER BY through an aggregation): one slot per layer, each slot the max() of the
// uid of the instance's pattern at that layer (an instance has exactly one per layer).
// Fewer layers: repeat the last one in the unused slots ($l1 <= ... <= $l6, $layers = [$l1..$l6]).
// The majority label is the smallest label among those with the top count.
// $label restricts to instances of one true label; -1 keeps every instance.
// Parameters: $run (string), $layers (list of int), $l1, $l2, $l3, $l4, $l5, $l6 (int), $min_strength (int),
//             $label (int, -1 = all).
// Columns: p1..p6 (pattern uids, one per slot), strength (int), purity (float), errors (int), label (int);
//          ordered by strength descending, then p1..p6.
MATCH (i:Instance)-[:ACTIVATES]->(p:Pattern)
WHERE i.run = $run AND p.layer IN $layers AND ($label = -1 OR i.label = $label)
WITH i,
     max(CASE WHEN p.layer = $l1 THEN p.uid END) AS p1, max(CASE WHEN p.layer = $l2 THEN p.uid END) AS p2,
     max(CASE WHEN p.layer = $l3 THEN p.uid END) AS p3, max(CASE WHEN p.layer = $l4 THEN p.uid END) AS p4,
     max(CASE WHEN p.layer = $l5 THEN p.uid END) AS p5, max(CASE WHEN p.layer = $l6 THEN p.uid END) AS p6
WITH p1, p2, p3, p4, p5, p6, i.pred AS pred, count(i) AS n, sum(CASE WHEN i.correct THEN 0 ELSE 1 END) AS e
WITH p1, p2, p3, p4, p5, p6, sum(n) AS strength, max(n) AS top, sum(e) AS errors,
     collect({pred: pred, n: n}) AS votes
WHERE strength >= $min_strength
UNWIND votes AS v
WITH p1, p2, p3, p4, p5, p6, strength, top, errors, v
WHERE v.n = top
RETURN p1 AS p1, p2 AS p2, p3 AS p3, p4 AS p4, p5 AS p5, p6 AS p6, strength AS strength,
       top * 1.0 / strength AS purity, errors AS errors, min(v.pred) AS label
ORDER BY strength DESC, p1, p2, p3, p4, p5, p6
