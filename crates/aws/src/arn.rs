//! ARNs of the sources Strongroom protects.

use strongroom_core::model::{Location, ResourceType};

/// The Resource Groups Tagging API type filter for a resource type.
pub const fn tagging_type(t: ResourceType) -> &'static str {
    match t {
        ResourceType::EbsVolume => "ec2:volume",
        ResourceType::Ec2Instance => "ec2:instance",
        ResourceType::RdsInstance => "rds:db",
        ResourceType::AuroraCluster => "rds:cluster",
        ResourceType::RedshiftCluster => "redshift:cluster",
    }
}

/// A parsed source ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceArn {
    pub resource_type: ResourceType,
    pub id: String,
    pub location: Location,
}

/// Parses `arn:partition:service:region:account:resource` for the five source types.
pub fn parse_source_arn(arn: &str) -> Option<SourceArn> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, region, account, resource) = (
        parts.next().filter(|p| *p == "arn")?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let (resource_type, id) = match service {
        "ec2" => {
            let (kind, id) = resource.split_once('/')?;
            match kind {
                "volume" => (ResourceType::EbsVolume, id),
                "instance" => (ResourceType::Ec2Instance, id),
                _ => return None,
            }
        }
        "rds" => {
            let (kind, id) = resource.split_once(':')?;
            match kind {
                "db" => (ResourceType::RdsInstance, id),
                "cluster" => (ResourceType::AuroraCluster, id),
                _ => return None,
            }
        }
        "redshift" => {
            let (kind, id) = resource.split_once(':')?;
            match kind {
                "cluster" => (ResourceType::RedshiftCluster, id),
                _ => return None,
            }
        }
        _ => return None,
    };
    if id.is_empty() || region.is_empty() || account.is_empty() {
        return None;
    }
    Some(SourceArn {
        resource_type,
        id: id.to_owned(),
        location: Location {
            account: account.to_owned(),
            region: region.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_five_source_types() {
        let cases = [
            (
                "arn:aws:ec2:us-east-1:123456789012:volume/vol-0abc",
                ResourceType::EbsVolume,
                "vol-0abc",
            ),
            (
                "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
                ResourceType::Ec2Instance,
                "i-0abc",
            ),
            (
                "arn:aws:rds:us-east-1:123456789012:db:orders",
                ResourceType::RdsInstance,
                "orders",
            ),
            (
                "arn:aws:rds:us-east-1:123456789012:cluster:ledger",
                ResourceType::AuroraCluster,
                "ledger",
            ),
            (
                "arn:aws:redshift:us-east-1:123456789012:cluster:dwh",
                ResourceType::RedshiftCluster,
                "dwh",
            ),
            (
                "arn:aws-us-gov:ec2:us-gov-west-1:123456789012:volume/vol-1",
                ResourceType::EbsVolume,
                "vol-1",
            ),
        ];
        for (arn, t, id) in cases {
            let p = parse_source_arn(arn).unwrap_or_else(|| panic!("{arn}"));
            assert_eq!((p.resource_type, p.id.as_str()), (t, id));
            assert_eq!(p.location.account, "123456789012");
        }
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:ec2:us-east-1:1:snapshot/snap-1",
            "arn:aws:rds:us-east-1:1:snapshot:x",
            "nope:aws:ec2:r:a:volume/v",
        ] {
            assert_eq!(parse_source_arn(bad), None, "{bad}");
        }
    }
}
