// Mark a run-level write as started; committed before the write's first change.
// Template: {table} is the bookkeeping label PendingWrite from the schema.
// Parameters: $uid (string), $run (string), $op (string), $tables (string, comma-separated labels),
//             $started (string, ISO time). Columns: none.
CREATE (w:{table} {uid: $uid, run: $run, op: $op, tables: $tables, started: $started, applied: false})
