import { Stack, Validations } from "aws-cdk-lib";

/** cdk-nag AwsSolutions findings that are deliberate, each with its reason. */
export function suppress(stack: Stack): void {
  for (const a of ACKNOWLEDGED) Validations.of(stack).acknowledge(a);
}

const IAM5 = "AwsSolutions::AwsSolutions-IAM5";

export const ACKNOWLEDGED: { id: string; reason: string }[] = [
  {
    id: `${IAM5}[Resource::*]`,
    reason:
      "Only for actions that take no resource ARN: tag:GetResources, the EC2/RDS/Redshift Describe* calls, " +
      "rds:DescribeAccountAttributes, the Organizations lists, ec2:Create{Snapshot,Snapshots,Image} (their tags are " +
      "limited by ec2:CreateAction), X-Ray and vended log delivery.",
  },
  {
    id: `${IAM5}[Resource::<RunsBucket.Arn>/runs/*]`,
    reason: "Every run writes its own keys under runs/<policy>/<execution>/ of the stack's bucket; nothing else.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*::snapshot/*]`,
    reason: "Deletes and the deleting mark are conditioned on aws:ResourceTag/strongroom:managed=true; tags at creation on ec2:CreateAction.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:snapshot/*]`,
    reason: "Tags at creation only (ec2:CreateAction is CreateSnapshot, CreateSnapshots or CreateImage).",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*::image/*]`,
    reason: "Deregistration is conditioned on aws:ResourceTag/strongroom:managed=true; tags at creation on ec2:CreateAction.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:snapshot:strongroom-*]`,
    reason: "Only snapshots named by Strongroom; deletes also need rds:snapshot-tag/strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:cluster-snapshot:strongroom-*]`,
    reason: "Only cluster snapshots named by Strongroom; deletes also need rds:cluster-snapshot-tag/strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:redshift:*:<AWS::AccountId>:snapshot:*/strongroom-*]`,
    reason: "Only Redshift snapshots named by Strongroom (any cluster); prune deletes only its policy's managed points.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:db:*]`,
    reason: "CreateDBSnapshot of any selected instance: the policy's tags choose them at run time.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:cluster:*]`,
    reason: "CreateDBClusterSnapshot of any selected cluster: the policy's tags choose them at run time.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:redshift:*:<AWS::AccountId>:cluster:*]`,
    reason: "CreateClusterSnapshot of any selected cluster: the policy's tags choose them at run time.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<AWS::StackName>-backup/*]`,
    reason: "The Distributed Map's child executions of this state machine, whose names Step Functions chooses.",
  },
  {
    id: "AwsSolutions::AwsSolutions-SF1",
    reason:
      "Logs errors only, without execution data: a run's states carry the estate's resource ids and tags, and " +
      "ALL-level logging of every child execution's transitions would cost more than the run; the run report is in S3.",
  },
  {
    id: "AwsSolutions::AwsSolutions-S1",
    reason: "The bucket holds only the stack's own run files, written and read by its own roles; CloudTrail data events are the audit path.",
  },
  {
    id: "AwsSolutions::AwsSolutions-SQS3",
    reason: "This queue is the schedules' dead-letter queue.",
  },
];
