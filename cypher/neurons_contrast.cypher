// Neurons of a run active for predicted class A and silent for predicted class B (after
// `apd neurons`): ACTIVE_FOR rate >= $hi towards label $a and <= $lo towards label $b.
// The rate filters come after both MATCH clauses: with `fa.rate >= $hi` inside the first one,
// LadybugDB returned no rows on the fm-test run of a store upgraded from an older schema
// (Neo4j and fresh test stores gave the right rows; the trigger is not isolated).
// Parameters: $run (string), $a (int, predicted label A), $b (int, predicted label B),
//             $hi (float, smallest rate for A), $lo (float, largest rate for B).
// Columns: layer (int), neuron (int, index in its layer), rate_a (float), rate_b (float),
//          rate (float, over all instances); ordered by rate_a - rate_b descending, layer, neuron.
MATCH (n:Neuron)-[fa:ACTIVE_FOR]->(la:Label)
WHERE n.run = $run AND la.value = $a
MATCH (n)-[fb:ACTIVE_FOR]->(lb:Label)
WHERE lb.value = $b
WITH n, fa, fb
WHERE fa.rate >= $hi AND fb.rate <= $lo
RETURN n.layer AS layer, n.`index` AS neuron, fa.rate AS rate_a, fb.rate AS rate_b, n.rate AS rate
ORDER BY rate_a - rate_b DESC, layer, neuron
