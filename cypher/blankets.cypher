// The MBH blankets of a run: specialization s per class and coverage, with its spread over
// planes and how many neurons the maximal pattern constrains (active ones separately) and
// how many of the run's patterns it covers.
// Parameters: $run (string).
// Columns: class (int), coverage (float), greedy (string), s (float, mean over planes),
//          s_min (float), s_max (float), planes (int), constraints (int), active (int,
//          constraints with status 1), base (int, constant neurons), joint (float, share of
//          the class's samples covered), samples (int), patterns (int, Pattern nodes covered);
//          ordered by coverage, then class.
MATCH (b:Blanket)
WHERE b.run = $run
OPTIONAL MATCH (b)-[c:CONSTRAINS]->(:Neuron)
WITH b, count(c) AS constraints, sum(CASE WHEN c.status = 1 THEN 1 ELSE 0 END) AS active
OPTIONAL MATCH (b)-[v:COVERS]->(:Pattern)
RETURN b.class AS class, b.coverage AS coverage, b.greedy AS greedy, b.s AS s, b.s_min AS s_min,
       b.s_max AS s_max, b.planes AS planes, constraints AS constraints, active AS active, b.base AS base,
       b.joint AS joint, b.samples AS samples, count(v) AS patterns
ORDER BY coverage, class
