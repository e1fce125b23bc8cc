// Lints Cypher with Neo4j's own language support, offline.
// stdin: {"schema": {labels, relationshipTypes, propertyKeys}, "queries": [{name, text, parameters}]}
// stdout: JSON list of {name, severity: "error"|"warning", line, message}; exit 1 if any.
import { lintCypherQuery, testData } from '@neo4j-cypher/language-support';

const input = JSON.parse(require_stdin());
function require_stdin() {
  return new TextDecoder().decode(
    Uint8Array.from(process.stdin.fd === 0 ? readAll() : []),
  );
}
function readAll() {
  const fs = process.getBuiltinModule('fs');
  return fs.readFileSync(0);
}

const problems = [];
for (const q of input.queries) {
  const parameters = Object.fromEntries(q.parameters.map((p) => [p, null]));
  const schema = { ...testData.mockSchema, ...input.schema, parameters };
  const { diagnostics } = lintCypherQuery(q.text, schema);
  for (const d of diagnostics) {
    problems.push({
      name: q.name,
      severity: d.severity === 1 ? 'error' : 'warning',
      line: d.range.start.line + 1,
      message: d.message,
    });
  }
}
process.stdout.write(JSON.stringify(problems, null, 1) + '\n');
process.exit(problems.length ? 1 : 0);
