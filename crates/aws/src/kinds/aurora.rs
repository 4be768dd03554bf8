//! Manual DB cluster snapshots of Aurora clusters (`CreateDBClusterSnapshot`),
//! named deterministically. The calls are shared with RDS's (`super::db`).

super::db::db_snapshot_kind! {
    Aurora, AuroraSnapshot, DbClusterSnapshot,
    identifier: db_cluster_snapshot_identifier, source: db_cluster_identifier,
    create: create_db_cluster_snapshot / "CreateDBClusterSnapshot" / db_cluster_snapshot,
    exists: ["DBClusterSnapshotAlreadyExistsFault", "DBClusterSnapshotAlreadyExists"],
    describe: describe_db_cluster_snapshots / "DescribeDBClusterSnapshots" / db_cluster_snapshots / "db-cluster-snapshot-id",
    arn: db_cluster_snapshot_arn,
    delete: delete_db_cluster_snapshot / "DeleteDBClusterSnapshot",
    attributes: describe_db_cluster_snapshot_attributes / "DescribeDBClusterSnapshotAttributes" / db_cluster_snapshot_attributes_result / db_cluster_snapshot_attributes,
    modify: modify_db_cluster_snapshot_attribute / "ModifyDBClusterSnapshotAttribute",
    copy: copy_db_cluster_snapshot / "CopyDBClusterSnapshot" / db_cluster_snapshot / source_db_cluster_snapshot_identifier / target_db_cluster_snapshot_identifier,
    encrypts_unencrypted: false,
    encrypted: storage_encrypted,
    explain: |err| err,
}
