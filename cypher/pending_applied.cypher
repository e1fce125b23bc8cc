// Flag a PendingWrite as applied, inside the first transaction that changes the run's data.
// Template: {table} is the bookkeeping label PendingWrite from the schema.
// Parameters: $uid (string). Columns: none.
MATCH (w:{table})
WHERE w.uid = $uid
SET w.applied = true
