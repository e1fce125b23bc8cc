// Neo4j DDL: a uniqueness constraint on uid for every node label, and an index on run for
// every label (a run's bounded deletes find its nodes by it) (backend variant).
// Parameters: none. Columns: none.
CREATE CONSTRAINT run_uid IF NOT EXISTS FOR (n:Run) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT instance_uid IF NOT EXISTS FOR (n:Instance) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT pattern_uid IF NOT EXISTS FOR (n:Pattern) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT label_uid IF NOT EXISTS FOR (n:Label) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT cluster_uid IF NOT EXISTS FOR (n:Cluster) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT flow_uid IF NOT EXISTS FOR (n:Flow) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT neuron_uid IF NOT EXISTS FOR (n:Neuron) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT blanket_uid IF NOT EXISTS FOR (n:Blanket) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT plane_uid IF NOT EXISTS FOR (n:Plane) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT pendingwrite_uid IF NOT EXISTS FOR (n:PendingWrite) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT epoch_uid IF NOT EXISTS FOR (n:Epoch) REQUIRE n.uid IS UNIQUE;
CREATE INDEX instance_run IF NOT EXISTS FOR (n:Instance) ON (n.run);
CREATE INDEX pattern_run IF NOT EXISTS FOR (n:Pattern) ON (n.run);
CREATE INDEX run_run IF NOT EXISTS FOR (n:Run) ON (n.run);
CREATE INDEX label_run IF NOT EXISTS FOR (n:Label) ON (n.run);
CREATE INDEX cluster_run IF NOT EXISTS FOR (n:Cluster) ON (n.run);
CREATE INDEX flow_run IF NOT EXISTS FOR (n:Flow) ON (n.run);
CREATE INDEX neuron_run IF NOT EXISTS FOR (n:Neuron) ON (n.run);
CREATE INDEX blanket_run IF NOT EXISTS FOR (n:Blanket) ON (n.run);
CREATE INDEX plane_run IF NOT EXISTS FOR (n:Plane) ON (n.run);
CREATE INDEX pendingwrite_run IF NOT EXISTS FOR (n:PendingWrite) ON (n.run);
CREATE INDEX epoch_run IF NOT EXISTS FOR (n:Epoch) ON (n.run);
