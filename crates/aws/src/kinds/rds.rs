//! Manual DB snapshots of RDS instances (`CreateDBSnapshot`), named
//! deterministically. The calls are shared with Aurora's (`super::db`).

super::db::db_snapshot_kind! {
    Rds, RdsSnapshot, DbSnapshot,
    identifier: db_snapshot_identifier, source: db_instance_identifier,
    create: create_db_snapshot / "CreateDBSnapshot" / db_snapshot,
    exists: ["DBSnapshotAlreadyExists"],
    describe: describe_db_snapshots / "DescribeDBSnapshots" / db_snapshots / "db-snapshot-id",
    arn: db_snapshot_arn,
    delete: delete_db_snapshot / "DeleteDBSnapshot",
    attributes: describe_db_snapshot_attributes / "DescribeDBSnapshotAttributes" / db_snapshot_attributes_result / db_snapshot_attributes,
    modify: modify_db_snapshot_attribute / "ModifyDBSnapshotAttribute",
    copy: copy_db_snapshot / "CopyDBSnapshot" / db_snapshot / source_db_snapshot_identifier / target_db_snapshot_identifier,
    encrypts_unencrypted: true,
    encrypted: encrypted,
    explain: |mut err| {
        if matches!(
            err.code.as_deref(),
            Some("InvalidParameterCombination" | "InvalidDBInstanceState")
        ) {
            err.message.push_str(" (an Aurora cluster member is protected through its cluster: select the cluster as aurora-cluster instead)");
        }
        err
    },
}
