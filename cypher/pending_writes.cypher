// Writes that started and never finished: a run whose write was cut off (crash, kill,
// power loss). Opening the store writable rolls each back; until then the run is incomplete.
// applied: whether the run's previous results had already been changed.
// Parameters: none. Columns: uid (string), run (string), op (string), tables (string), started (string),
//          applied (bool); ordered by started, then uid.
MATCH (w:PendingWrite)
RETURN w.uid AS uid, w.run AS run, w.op AS op, w.tables AS tables, w.started AS started, w.applied AS applied
ORDER BY started, uid
