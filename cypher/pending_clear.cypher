// Remove one PendingWrite marker: the write it marked has committed or been rolled back.
// Template: {table} is the bookkeeping label PendingWrite from the schema.
// Parameters: $uid (string). Columns: none.
MATCH (w:{table})
WHERE w.uid = $uid
DELETE w
