#!/usr/bin/env python3
"""Seeds an estate into the emulator and prints a manifest of it as JSON.

Estates:
  demo   a small estate in two regions: what `make demo` protects.
  test   the integration tests' estate: matching, non-matching and excluded
         resources of all five types in two regions, plus a third region that
         no policy lists.
  bench  >= 100 resources of all five types in two regions (the API-call benchmark).
  scale  1,000 sources of all five types in two regions (500 each): with
         ``--account``, one account of the 2,000-source benchmark.
  copies, copies-many, copies-default-key, copies-bench
         sources in us-east-1 for copies to us-west-2: three volumes under a
         customer key, an instance, a database and a Redshift cluster; fifty volumes; two volumes
         under the AWS managed aws/ebs key; a hundred recovery points of four
         kinds (the copy benchmark). Each also makes the destination's
         key (``keys`` in the manifest).
  vault  a vault account: roles ``strongroom-vault-copy``,
         ``strongroom-vault-prune`` and ``strongroom-vault-restore`` and a key
         in us-west-2.
  restores  sources in a VPC of us-east-1 to back up and restore: an
         instance with three gp3 volumes, a volume, an RDS instance, an
         Aurora cluster with two instances, a Redshift cluster (the network
         in ``keys``), and a key in us-west-2 for copies.

With ``--organization`` it instead makes the home account an AWS
Organizations management account with a small tree and prints its ids:
root -> ``prod`` (account ``prod-a``) -> ``prod/eu`` (account ``prod-eu``),
and root -> ``sandbox`` (account ``sandbox``). Estates are then seeded into
those accounts with ``--account``.

Selection in every estate: `backup=daily` is protected by the example policies,
`backup-skip=true` excludes, anything else is left alone.
The manifest lists every resource with its type, id, ARN, region and tags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from client import ACCOUNT, aws_client


class Estate:
    def __init__(self, endpoint: str, account: str = ACCOUNT) -> None:
        self.endpoint = endpoint
        self.account = account
        self.resources: list[dict[str, Any]] = []
        self.keys: dict[str, str] = {}
        self.roles: dict[str, str] = {}

    def client(self, service: str, region: str) -> Any:
        c = aws_client(self.endpoint, service, region)
        if self.account != ACCOUNT:
            # moto's way of acting in another account (its own header); the
            # products reach other accounts through STS AssumeRole instead.
            account = self.account

            def in_account(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = account

            c.meta.events.register("before-sign", in_account)
        return c

    def role(self, name: str) -> str:
        """An IAM role in this account that the home account may assume."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                           "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}],
        }
        arn = self.client("iam", "us-east-1").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]
        self.roles[name] = arn
        return arn

    def key(self, region: str, name: str) -> str:
        """A customer-managed KMS key in `region`, aliased alias/<name>."""
        kms = self.client("kms", region)
        arn = kms.create_key(Description=f"strongroom test key {name}")["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=f"alias/{name}", TargetKeyId=arn)
        self.keys[name] = arn
        return arn

    def _add(self, rtype: str, rid: str, arn: str, region: str, tags: dict[str, str], **extra: Any) -> None:
        arn = arn.replace(f":{ACCOUNT}:", f":{self.account}:", 1)
        self.resources.append(
            {"resource_type": rtype, "id": rid, "arn": arn, "region": region, "tags": tags,
             "account": self.account, **extra}
        )

    @staticmethod
    def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    def volume(self, region: str, tags: dict[str, str], size: int = 8, kms: str | None = None) -> str:
        """A volume; `kms`: encrypted with that key ARN, or `default` (the account's aws/ebs key)."""
        ec2 = self.client("ec2", region)
        spec = [{"ResourceType": "volume", "Tags": self._tags(tags)}] if tags else []
        encryption: dict[str, Any] = {}
        if kms == "default":
            encryption = {"Encrypted": True}
        elif kms:
            encryption = {"Encrypted": True, "KmsKeyId": kms}
        v = ec2.create_volume(AvailabilityZone=f"{region}a", Size=size, TagSpecifications=spec, **encryption)
        vid = v["VolumeId"]
        self._add("ebs-volume", vid, f"arn:aws:ec2:{region}:{ACCOUNT}:volume/{vid}", region, tags)
        return vid

    def instance(self, region: str, tags: dict[str, str], data_volumes: int = 1) -> str:
        ec2 = self.client("ec2", region)
        mappings = [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}]
        for i in range(data_volumes):
            mappings.append({"DeviceName": f"/dev/sd{chr(ord('f') + i)}", "Ebs": {"VolumeSize": 20}})
        spec = [{"ResourceType": "instance", "Tags": self._tags(tags)}] if tags else []
        r = ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            BlockDeviceMappings=mappings,
            TagSpecifications=spec,
        )
        inst = r["Instances"][0]
        iid = inst["InstanceId"]
        vols = [m["Ebs"]["VolumeId"] for m in inst.get("BlockDeviceMappings", [])]
        self._add(
            "ec2-instance", iid, f"arn:aws:ec2:{region}:{ACCOUNT}:instance/{iid}", region, tags, volumes=vols
        )
        return iid

    def rds(self, region: str, name: str, tags: dict[str, str]) -> None:
        self.client("rds", region).create_db_instance(
            DBInstanceIdentifier=name,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="admin1",
            MasterUserPassword="not-a-secret-1",
            BackupRetentionPeriod=0,
            Tags=self._tags(tags),
        )
        self._add("rds-instance", name, f"arn:aws:rds:{region}:{ACCOUNT}:db:{name}", region, tags)

    def aurora(self, region: str, name: str, tags: dict[str, str]) -> None:
        self.client("rds", region).create_db_cluster(
            DBClusterIdentifier=name,
            Engine="aurora-postgresql",
            MasterUsername="admin1",
            MasterUserPassword="not-a-secret-1",
            Tags=self._tags(tags),
        )
        self._add("aurora-cluster", name, f"arn:aws:rds:{region}:{ACCOUNT}:cluster:{name}", region, tags)

    def redshift(self, region: str, name: str, tags: dict[str, str]) -> None:
        self.client("redshift", region).create_cluster(
            ClusterIdentifier=name,
            NodeType="ra3.xlplus",
            MasterUsername="admin1",
            MasterUserPassword="NotASecret1",
            Tags=self._tags(tags),
        )
        self._add("redshift-cluster", name, f"arn:aws:redshift:{region}:{ACCOUNT}:cluster:{name}", region, tags)


DAILY = {"backup": "daily"}


def demo(e: Estate) -> None:
    for region, env in (("us-east-1", "prod"), ("eu-west-1", "prod")):
        short = region.split("-")[0] + region.split("-")[1][0]
        e.instance(region, {"Name": f"web-{short}", "env": env, **DAILY}, data_volumes=2)
        e.instance(region, {"Name": f"batch-{short}", "env": env, "backup": "weekly"})
        e.volume(region, {"Name": f"scratch-{short}", **DAILY})
        e.volume(region, {"Name": f"tmp-{short}", "backup-skip": "true", **DAILY})
        e.rds(region, f"orders-{short}", {"env": env, **DAILY})
        e.aurora(region, f"ledger-{short}", {"env": env, **DAILY})
        e.redshift(region, f"dwh-{short}", {"env": env, **DAILY})


def test(e: Estate) -> None:
    for region in ("us-east-1", "eu-west-1"):
        short = region.replace("-", "")[:5]
        e.instance(region, {"Name": f"app-{short}", "team": "core", **DAILY}, data_volumes=2)
        e.instance(region, {"Name": f"batch-{short}", "backup": "weekly"})
        e.volume(region, {"Name": f"data-{short}", "team": "core", "aws:cloudformation:stack-name": "x", **DAILY})
        e.volume(region, {"Name": f"skip-{short}", "backup-skip": "true", **DAILY})
        e.volume(region, {})
        e.rds(region, f"orders-{short}", {"team": "core", **DAILY})
        e.rds(region, f"reports-{short}", {"team": "core", **DAILY})
        e.rds(region, f"dev-{short}", {"env": "dev"})
        e.aurora(region, f"ledger-{short}", {"team": "core", **DAILY})
        e.aurora(region, f"analytics-{short}", {"backup": "weekly"})
        e.redshift(region, f"dwh-{short}", {"team": "core", **DAILY})
    # A region no policy lists.
    e.volume("ap-southeast-2", {"Name": "elsewhere", **DAILY})


def bench(e: Estate) -> None:
    for region in ("us-east-1", "eu-west-1"):
        short = region.replace("-", "")[:5]
        tags = lambda n: {"Name": n, "env": "prod", **DAILY}  # noqa: E731
        for i in range(10):
            e.instance(region, tags(f"app-{short}-{i}"), data_volumes=1)
        for i in range(20):
            e.volume(region, tags(f"vol-{short}-{i}"))
        for i in range(8):
            e.rds(region, f"db-{short}-{i}", tags(f"db-{i}"))
        for i in range(6):
            e.aurora(region, f"aurora-{short}-{i}", tags(f"aurora-{i}"))
        for i in range(8):
            e.redshift(region, f"dwh-{short}-{i}", tags(f"dwh-{i}"))


def scale(e: Estate) -> None:
    for region in ("us-east-1", "eu-west-1"):
        short = region.replace("-", "")[:5]
        tags = lambda n: {"Name": n, "env": "prod", **DAILY}  # noqa: E731
        for i in range(100):
            e.instance(region, tags(f"app-{short}-{i}"), data_volumes=1)
        for i in range(300):
            e.volume(region, tags(f"vol-{short}-{i}"))
        for i in range(50):
            e.rds(region, f"db-{short}-{i}", tags(f"db-{i}"))
        for i in range(30):
            e.aurora(region, f"aurora-{short}-{i}", tags(f"aurora-{i}"))
        for i in range(20):
            e.redshift(region, f"dwh-{short}-{i}", tags(f"dwh-{i}"))


# Copies (issue 10): sources in us-east-1, copies to us-west-2.
COPY_SOURCE = "us-east-1"
COPY_DESTINATION = "us-west-2"


def copies(e: Estate) -> None:
    """Three volumes under a customer key, an instance, a database, a Redshift
    cluster; the destination's key."""
    source = e.key(COPY_SOURCE, "strongroom-source")
    for i in range(3):
        e.volume(COPY_SOURCE, {"Name": f"data-{i}", "team": "core", **DAILY}, kms=source)
    e.instance(COPY_SOURCE, {"Name": "app", **DAILY}, data_volumes=1)
    e.rds(COPY_SOURCE, "orders", {"team": "core", **DAILY})
    e.redshift(COPY_SOURCE, "warehouse", {"team": "core", **DAILY})
    e.key(COPY_DESTINATION, "strongroom-destination")


def copies_many(e: Estate) -> None:
    """Fifty volumes under a customer key: more copies than may be in flight."""
    source = e.key(COPY_SOURCE, "strongroom-source")
    for i in range(50):
        e.volume(COPY_SOURCE, {"Name": f"data-{i}", **DAILY}, kms=source)
    e.key(COPY_DESTINATION, "strongroom-destination")


def copies_bench(e: Estate) -> None:
    """A hundred recovery points to copy: 70 volumes under a customer key, 10
    instances (2 volumes each), 10 RDS instances, 10 Aurora clusters."""
    source = e.key(COPY_SOURCE, "strongroom-source")
    for i in range(70):
        e.volume(COPY_SOURCE, {"Name": f"data-{i}", **DAILY}, kms=source)
    for i in range(10):
        e.instance(COPY_SOURCE, {"Name": f"app-{i}", **DAILY}, data_volumes=1)
        e.rds(COPY_SOURCE, f"db-{i}", DAILY)
        e.aurora(COPY_SOURCE, f"aurora-{i}", DAILY)
    e.key(COPY_DESTINATION, "strongroom-destination")


def copies_default_key(e: Estate) -> None:
    """Two volumes under the account's AWS managed aws/ebs key."""
    for i in range(2):
        e.volume(COPY_SOURCE, {"Name": f"data-{i}", **DAILY}, kms="default")
    e.key(COPY_DESTINATION, "strongroom-destination")


def vault(e: Estate) -> None:
    """A vault account: its copy, prune and restore roles and its key in the destination region."""
    e.role("strongroom-vault-copy")
    e.role("strongroom-vault-prune")
    e.role("strongroom-vault-restore")
    e.key(COPY_DESTINATION, "strongroom-vault")


def restores(e: Estate) -> None:
    """Sources to back up and restore (issue 11), in us-east-1: a VPC with a
    subnet, a security group, a DB and a Redshift subnet group, a key pair; a
    second VPC with a group of its own (a mismatch to refuse); an instance in
    the first VPC with gp3 volumes on /dev/sda1, /dev/sdf and /dev/sdg; a gp3
    volume with 4000 IOPS; an RDS instance, an Aurora cluster with two
    instances and a Redshift cluster, all in the VPC. The network's ids are
    in the manifest's ``keys`` (``vpc``, ``subnet``, ``sg``, ``other-vpc``,
    ``other-sg``, ``db-subnet-group``, ``redshift-subnet-group``, ``key-pair``)."""
    region = COPY_SOURCE
    ec2 = e.client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone=f"{region}a")["Subnet"]["SubnetId"]
    subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24", AvailabilityZone=f"{region}b")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    other_vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    other_sg = ec2.create_security_group(GroupName="other", Description="other", VpcId=other_vpc)["GroupId"]
    ec2.create_key_pair(KeyName="ops")
    rds = e.client("rds", region)
    rds.create_db_subnet_group(DBSubnetGroupName="app-db", DBSubnetGroupDescription="app", SubnetIds=[subnet, subnet_b])
    e.client("redshift", region).create_cluster_subnet_group(
        ClusterSubnetGroupName="app-dwh", Description="app", SubnetIds=[subnet, subnet_b]
    )
    e.keys.update({"vpc": vpc, "subnet": subnet, "sg": sg, "other-vpc": other_vpc, "other-sg": other_sg,
                   "db-subnet-group": "app-db", "redshift-subnet-group": "app-dwh", "key-pair": "ops"})
    tags = {"Name": "app", "team": "core", **DAILY}
    mappings = [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3"}},
                {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 20, "VolumeType": "gp3"}},
                {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 30, "VolumeType": "gp3"}}]
    r = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="m5.large",
                          SubnetId=subnet, SecurityGroupIds=[sg], KeyName="ops", BlockDeviceMappings=mappings,
                          TagSpecifications=[{"ResourceType": "instance", "Tags": e._tags(tags)}])
    inst = r["Instances"][0]
    iid = inst["InstanceId"]
    e._add("ec2-instance", iid, f"arn:aws:ec2:{region}:{ACCOUNT}:instance/{iid}", region, tags,
           volumes=[m["Ebs"]["VolumeId"] for m in inst.get("BlockDeviceMappings", [])])
    vtags = {"Name": "data", "team": "core", **DAILY}
    v = ec2.create_volume(AvailabilityZone=f"{region}a", Size=50, VolumeType="gp3", Iops=4000,
                          TagSpecifications=[{"ResourceType": "volume", "Tags": e._tags(vtags)}])
    e._add("ebs-volume", v["VolumeId"], f"arn:aws:ec2:{region}:{ACCOUNT}:volume/{v['VolumeId']}", region, vtags)
    dtags = {"team": "core", **DAILY}
    rds.create_db_instance(DBInstanceIdentifier="orders", Engine="postgres", DBInstanceClass="db.m6g.large",
                           AllocatedStorage=20, MasterUsername="admin1", MasterUserPassword="not-a-secret-1",
                           BackupRetentionPeriod=0, DBSubnetGroupName="app-db", VpcSecurityGroupIds=[sg],
                           Tags=e._tags(dtags))
    e._add("rds-instance", "orders", f"arn:aws:rds:{region}:{ACCOUNT}:db:orders", region, dtags)
    rds.create_db_cluster(DBClusterIdentifier="ledger", Engine="aurora-postgresql", MasterUsername="admin1",
                          MasterUserPassword="not-a-secret-1", DBSubnetGroupName="app-db",
                          VpcSecurityGroupIds=[sg], Tags=e._tags(dtags))
    for n in (1, 2):
        rds.create_db_instance(DBInstanceIdentifier=f"ledger-{n}", DBClusterIdentifier="ledger",
                               Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    e._add("aurora-cluster", "ledger", f"arn:aws:rds:{region}:{ACCOUNT}:cluster:ledger", region, dtags)
    e.client("redshift", region).create_cluster(
        ClusterIdentifier="warehouse", NodeType="ra3.xlplus", NumberOfNodes=2, ClusterType="multi-node",
        MasterUsername="admin1", MasterUserPassword="NotASecret1", ClusterSubnetGroupName="app-dwh",
        VpcSecurityGroupIds=[sg], Tags=e._tags(dtags))
    e._add("redshift-cluster", "warehouse", f"arn:aws:redshift:{region}:{ACCOUNT}:cluster:warehouse", region, dtags)
    e.key(COPY_DESTINATION, "strongroom-destination")


def empty(e: Estate) -> None:
    """Nothing: with --role, just the role."""


ESTATES = {
    "demo": demo, "test": test, "bench": bench, "scale": scale, "empty": empty,
    "copies": copies, "copies-many": copies_many, "copies-default-key": copies_default_key, "copies-bench": copies_bench, "vault": vault,
    "restores": restores,
}


def organization(endpoint: str) -> dict[str, Any]:
    """The home account as management account of a small tree (see the module doc)."""
    org = aws_client(endpoint, "organizations", "us-east-1")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    units: dict[str, str] = {}
    units["prod"] = org.create_organizational_unit(ParentId=root, Name="prod")["OrganizationalUnit"]["Id"]
    units["prod/eu"] = org.create_organizational_unit(ParentId=units["prod"], Name="eu")["OrganizationalUnit"]["Id"]
    units["sandbox"] = org.create_organizational_unit(ParentId=root, Name="sandbox")["OrganizationalUnit"]["Id"]
    accounts: dict[str, str] = {}
    for name, unit in [("prod-a", "prod"), ("prod-eu", "prod/eu"), ("sandbox", "sandbox")]:
        status = org.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"]
        accounts[name] = status["AccountId"]
        org.move_account(AccountId=accounts[name], SourceParentId=root, DestinationParentId=units[unit])
    return {"root": root, "units": units, "accounts": accounts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--estate", choices=sorted(ESTATES))
    ap.add_argument("--account", default=ACCOUNT, help="the account to seed (default: the home account)")
    ap.add_argument("--role", help="also create this IAM role in the account, assumable from the home account")
    ap.add_argument("--organization", action="store_true", help="make an AWS Organizations tree instead (see above)")
    args = ap.parse_args()
    if not args.endpoint.startswith(("http://127.", "http://localhost")):
        sys.exit("seed.py only talks to a loopback emulator")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    if args.organization:
        json.dump(organization(args.endpoint), sys.stdout, indent=1)
        print()
        return
    if not args.estate:
        ap.error("--estate is required (or --organization)")
    e = Estate(args.endpoint, args.account)
    role = e.role(args.role) if args.role else None
    ESTATES[args.estate](e)
    json.dump({"estate": args.estate, "account": args.account, "role_arn": role, "resources": e.resources,
               "keys": e.keys, "roles": e.roles},
              sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
