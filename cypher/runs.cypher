// Every run in the store with its provenance.
// Parameters: none.
// Columns: run, model, model_hash, factory, dataset, split, epoch, arch, created, instances, layers, accuracy,
//   history_only (bool: only the Epoch nodes of `apd train --record-every`, no instances),
//   official_split (bool: the split is the source's own; null for runs of older stores), split_note.
MATCH (r:Run)
RETURN r.run AS run, r.model AS model, r.model_hash AS model_hash, r.factory AS factory,
       r.dataset AS dataset,
       r.split AS split, r.epoch AS epoch, r.arch AS arch, r.created AS created,
       r.instances AS instances, r.layers AS layers, r.accuracy AS accuracy,
       r.history_only AS history_only, r.official_split AS official_split, r.split_note AS split_note
ORDER BY run
