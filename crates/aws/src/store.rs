//! The [`ObjectStore`] port over S3: the run's files in the stack's bucket,
//! which lives in the functions' own account and region.

use aws_sdk_s3::primitives::ByteStream;
use strongroom_core::ports::ObjectStore;
use strongroom_core::runs::S3Object;
use strongroom_core::CloudError;

use crate::error::from_sdk;
use crate::AwsCloud;

impl AwsCloud {
    fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| aws_sdk_s3::Client::new(self.clients.config()))
    }

    pub(crate) fn home_region(&self) -> String {
        self.clients
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }
}

impl ObjectStore for AwsCloud {
    async fn put_object(&self, object: &S3Object, body: Vec<u8>) -> Result<(), CloudError> {
        Box::pin(
            self.s3()
                .put_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .content_type(content_type(&object.key))
                .body(ByteStream::from(body))
                .send(),
        )
        .await
        .map_err(|e| from_sdk(e, "PutObject", &object.to_string(), &self.home_region()))?;
        Ok(())
    }

    async fn get_object(&self, object: &S3Object) -> Result<Vec<u8>, CloudError> {
        let region = self.home_region();
        let out = Box::pin(
            self.s3()
                .get_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .send(),
        )
        .await
        .map_err(|e| from_sdk(e, "GetObject", &object.to_string(), &region))?;
        let body = out.body.collect().await.map_err(|e| {
            CloudError::new(
                strongroom_core::ErrorKind::Throttled,
                "GetObject",
                object.to_string(),
                &region,
                format!("the body was cut short: {e}"),
            )
        })?;
        Ok(body.into_bytes().to_vec())
    }
}

/// JSON Lines for the Map items, JSON for everything else.
fn content_type(key: &str) -> &'static str {
    if key.ends_with(".jsonl") {
        "application/jsonl"
    } else {
        "application/json"
    }
}
