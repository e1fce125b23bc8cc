// Neo4j DDL: a uniqueness constraint on uid for every node label (backend variant).
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
