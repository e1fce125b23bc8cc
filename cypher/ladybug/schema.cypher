// LadybugDB DDL: every node and relationship table of the APD schema (DESIGN.md section 4).
// Backend variant (LadybugDB declares typed tables; Neo4j only needs constraints).
// This file is also the toolkit's single source for property names and types:
// toolkit/store/schema.py parses it to type bulk frames before COPY.
// Parameters: none. Columns: none.
CREATE NODE TABLE IF NOT EXISTS Run(uid STRING, run STRING, model STRING, model_hash STRING, factory STRING, dataset STRING, split STRING, epoch INT64, arch STRING, created STRING, instances INT64, layers INT64, accuracy DOUBLE, source STRING, neurons STRING, history_only BOOLEAN, official_split BOOLEAN, split_note STRING, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Instance(uid STRING, run STRING, idx INT64, row INT64, label INT64, pred INT64, correct BOOLEAN, forgetting INT64, never_learned BOOLEAN, cluster INT64, boundary_dist DOUBLE, inradius DOUBLE, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Pattern(uid STRING, run STRING, layer INT64, key STRING, bits STRING, ones INT64, support INT64, errors INT64, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Label(uid STRING, run STRING, value INT64, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Cluster(uid STRING, run STRING, cid INT64, size INT64, purity DOUBLE, correct DOUBLE, level INT64, layers STRING, label INT64, final BOOLEAN, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Flow(uid STRING, run STRING, layers STRING, fid INT64, strength INT64, purity DOUBLE, errors INT64, label INT64, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Neuron(uid STRING, run STRING, layer INT64, `index` INT64, active INT64, rate DOUBLE, flips DOUBLE, flipped INT64, flips_from STRING, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Blanket(uid STRING, run STRING, class INT64, coverage DOUBLE, greedy STRING, layer INT64, s DOUBLE, s_min DOUBLE, s_max DOUBLE, planes INT64, constraints INT64, base INT64, joint DOUBLE, samples INT64, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Plane(uid STRING, run STRING, anchors STRING, box_area DOUBLE, regions INT64, dataset STRING, split STRING, scale DOUBLE, umin DOUBLE, umax DOUBLE, vmin DOUBLE, vmax DOUBLE, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS PendingWrite(uid STRING, run STRING, op STRING, tables STRING, started STRING, applied BOOLEAN, PRIMARY KEY(uid));
CREATE NODE TABLE IF NOT EXISTS Epoch(uid STRING, run STRING, epoch INT64, layer INT64, patterns INT64, split STRING, instances INT64, loss DOUBLE, accuracy DOUBLE, PRIMARY KEY(uid));
CREATE REL TABLE IF NOT EXISTS ACTIVATES(FROM Instance TO Pattern, layer INT64, near_same INT64, near_other INT64);
CREATE REL TABLE IF NOT EXISTS NEXT(FROM Pattern TO Pattern, count INT64, errors INT64);
CREATE REL TABLE IF NOT EXISTS PREDICTS(FROM Pattern TO Label, count INT64, errors INT64);
CREATE REL TABLE IF NOT EXISTS `IN`(FROM Instance TO Cluster);
CREATE REL TABLE IF NOT EXISTS SPLIT_INTO(FROM Cluster TO Cluster, gain DOUBLE);
CREATE REL TABLE IF NOT EXISTS THROUGH(FROM Flow TO Pattern);
CREATE REL TABLE IF NOT EXISTS CONSTRAINS(FROM Blanket TO Neuron, status INT64);
CREATE REL TABLE IF NOT EXISTS COVERS(FROM Blanket TO Pattern);
CREATE REL TABLE IF NOT EXISTS MEASURED(FROM Plane TO Blanket, s DOUBLE, area DOUBLE);
CREATE REL TABLE IF NOT EXISTS COARSENS(FROM Run TO Run);
CREATE REL TABLE IF NOT EXISTS NEAR(FROM Pattern TO Pattern, distance INT64);
CREATE REL TABLE IF NOT EXISTS ACTIVE_FOR(FROM Neuron TO Label, count INT64, rate DOUBLE);
