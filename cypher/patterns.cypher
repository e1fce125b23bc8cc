// Distinct activation patterns of a run, per layer, with how many instances have each.
// Parameters: $run (string).
// Columns: layer (int), key (string), bits (hex string), ones (int), support (int), errors (int).
MATCH (p:Pattern)
WHERE p.run = $run
RETURN p.layer AS layer, p.key AS key, p.bits AS bits, p.ones AS ones,
       p.support AS support, p.errors AS errors
ORDER BY layer, support DESC, key
