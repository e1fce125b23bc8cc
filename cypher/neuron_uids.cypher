// The uids of a run's Neuron nodes, so that `apd mbh` and `apd neurons` create only the missing ones.
// Parameters: $run (string).
// Columns: uid (string).
MATCH (n:Neuron)
WHERE n.run = $run
RETURN n.uid AS uid
