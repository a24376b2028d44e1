//! docket's AWS backend: the ports of `docket_core::ports` on SQS (work,
//! finalize and webhook queues with dead-letter companions), S3 (document
//! packs, results, plugins) and one DynamoDB table (jobs, item outcomes,
//! API keys, tenants, rate-limit buckets).
//!
//! Every resource is named from one prefix by [`Names`] — the deploy
//! template names them the same way from its stack name, and a test checks
//! the two agree. Endpoints and credentials come from the usual AWS
//! environment (`AWS_ENDPOINT_URL` points everything at an emulator).
#![deny(missing_docs)]

mod blob;
mod calls;
mod error;
mod queue;
mod store;

use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use docket_core::ports::QueueName;

pub use blob::S3Blobs;
pub use calls::CallCounter;
pub use error::ProvisionError;
pub use queue::SqsQueue;
pub use store::DynamoJobStore;

/// The names of a deployment's resources, all derived from one prefix (the
/// stack name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The prefix.
    pub prefix: String,
    /// What every queue's URL starts with (`https://sqs.<region>.amazonaws.com/<account>/`),
    /// when known: the queues are then addressed without asking SQS for
    /// their URLs (twelve round trips a new Lambda container would pay
    /// before its first message).
    pub queue_url_prefix: Option<String>,
}

impl Names {
    /// Names under `prefix` (lowercase letters, digits and dashes, so the
    /// bucket name is valid too).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            queue_url_prefix: None,
        }
    }

    /// These names with the queues' URLs starting with `url_prefix` (the
    /// deploy template sets `DOCKET_QUEUE_URL_PREFIX` to it).
    #[must_use]
    pub fn with_queue_url_prefix(mut self, url_prefix: impl Into<String>) -> Self {
        self.queue_url_prefix = Some(url_prefix.into());
        self
    }

    /// The DynamoDB table.
    pub fn table(&self) -> String {
        format!("{}-jobs", self.prefix)
    }

    /// The S3 bucket.
    pub fn bucket(&self) -> String {
        format!("{}-data", self.prefix)
    }

    /// An SQS queue.
    pub fn queue(&self, queue: QueueName) -> String {
        format!("{}-{}", self.prefix, queue.as_str())
    }

    /// The dead-letter companion of an SQS queue.
    pub fn dead_letter_queue(&self, queue: QueueName) -> String {
        format!("{}-{}-dlq", self.prefix, queue.as_str())
    }
}

/// The table's partition key attribute.
pub const PARTITION_KEY: &str = "pk";

/// The table's sort key attribute.
pub const SORT_KEY: &str = "sk";

/// The table's global secondary index listing a tenant's jobs by time.
pub const TENANT_INDEX: &str = "by-tenant";

/// The index's partition key: the job's tenant.
pub const TENANT_KEY: &str = "tenant";

/// The index's sort key: `<created ms, 13 digits>#<job id>`.
pub const CREATED_KEY: &str = "created_key";

/// Where files dropped for ingestion go: `inbox/<tenant>/<file>`. The
/// bucket notifies the ingest queue of every object created under it.
pub use docket_core::pipeline::INBOX_PREFIX;

/// The table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Receives after which SQS moves a message to its dead-letter queue. The
/// pipeline gives up on a retryable failure after 5 receives and records
/// it; the queue's threshold is above that.
pub const MAX_RECEIVE_COUNT: u32 = 6;

/// The three adapters over one deployment.
#[derive(Clone)]
pub struct AwsBackend {
    /// The queues.
    pub queue: Arc<SqsQueue>,
    /// The bucket.
    pub blobs: Arc<S3Blobs>,
    /// The table.
    pub store: Arc<DynamoJobStore>,
}

impl AwsBackend {
    /// The pipeline's ports over this deployment, with the process's
    /// evaluators, webhook sender and file reader, on the system clock.
    pub fn ports(
        &self,
        evaluators: Arc<dyn docket_core::ports::Evaluators>,
        webhooks: Arc<dyn docket_core::ports::WebhookSender>,
        reader: Arc<dyn docket_core::pipeline::DocumentReader>,
    ) -> docket_core::Ports {
        docket_core::Ports::with_store(
            self.queue.clone(),
            self.blobs.clone(),
            self.store.clone(),
            evaluators,
            webhooks,
            reader,
            Arc::new(docket_core::ports::SystemClock),
        )
    }

    /// Connects to the deployment named by `names`, with configuration from
    /// the environment (region, credentials, `AWS_ENDPOINT_URL`). Resolves
    /// every queue's URL.
    ///
    /// # Errors
    /// When a queue does not exist or the service cannot be reached.
    pub async fn connect(names: &Names) -> Result<Self, ProvisionError> {
        Self::connect_counting(names, None).await
    }

    /// [`AwsBackend::connect`], counting every API call in `counter`.
    ///
    /// # Errors
    /// As [`AwsBackend::connect`].
    pub async fn connect_counting(
        names: &Names,
        counter: Option<CallCounter>,
    ) -> Result<Self, ProvisionError> {
        let config = aws_config::load_from_env().await;
        let emulated = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let mut s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(emulated);
        let mut sqs = aws_sdk_sqs::config::Builder::from(&config);
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&config);
        if let Some(counter) = counter {
            s3 = s3.interceptor(counter.clone());
            sqs = sqs.interceptor(counter.clone());
            dynamodb = dynamodb.interceptor(counter);
        }
        let s3 = aws_sdk_s3::Client::from_conf(s3.build());
        let sqs = aws_sdk_sqs::Client::from_conf(sqs.build());
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb.build());
        Ok(Self {
            queue: Arc::new(SqsQueue::connect(sqs, names).await?),
            blobs: Arc::new(S3Blobs::new(s3, names.bucket())),
            store: Arc::new(DynamoJobStore::new(dynamodb, names.table())),
        })
    }

    /// Creates a deployment's table, bucket and queues as the deploy
    /// template declares them (for tests on an emulator; production
    /// deploys the template). Existing resources are left as they are.
    ///
    /// # Errors
    /// When a resource cannot be created.
    pub async fn provision(names: &Names) -> Result<(), ProvisionError> {
        let config = aws_config::load_from_env().await;
        let emulated = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let created = dynamodb
            .create_table()
            .table_name(names.table())
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
            .key_schema(key(SORT_KEY, KeyType::Range)?)
            .attribute_definitions(attribute(PARTITION_KEY)?)
            .attribute_definitions(attribute(SORT_KEY)?)
            .attribute_definitions(attribute(TENANT_KEY)?)
            .attribute_definitions(attribute(CREATED_KEY)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(TENANT_INDEX)
                    .key_schema(key(TENANT_KEY, KeyType::Hash)?)
                    .key_schema(key(CREATED_KEY, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {
                dynamodb
                    .update_time_to_live()
                    .table_name(names.table())
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .enabled(true)
                            .attribute_name(TTL_ATTRIBUTE)
                            .build()?,
                    )
                    .send()
                    .await
                    .map_err(ProvisionError::from_sdk)?;
            }
            Err(e) if error::code(&e) == Some("ResourceInUseException") => {}
            Err(e) => return Err(ProvisionError::from_sdk(e)),
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(emulated)
                .build(),
        );
        match s3.create_bucket().bucket(names.bucket()).send().await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    error::code(&e),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) => {}
            Err(e) => return Err(ProvisionError::from_sdk(e)),
        }
        let sqs = aws_sdk_sqs::Client::new(&config);
        queue::provision(&sqs, names).await?;
        // Files dropped under the inbox notify the ingest queue.
        let ingest = queue::arn_of(&sqs, &names.queue(QueueName::Ingest)).await?;
        let prefix = FilterRule::builder()
            .name(FilterRuleName::Prefix)
            .value(INBOX_PREFIX)
            .build();
        let notify = QueueConfiguration::builder()
            .queue_arn(ingest)
            .events(Event::S3ObjectCreated)
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(S3KeyFilter::builder().filter_rules(prefix).build())
                    .build(),
            )
            .build()
            .map_err(|e| ProvisionError(e.to_string()))?;
        s3.put_bucket_notification_configuration()
            .bucket(names.bucket())
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(notify)
                    .build(),
            )
            .send()
            .await
            .map_err(ProvisionError::from_sdk)?;
        Ok(())
    }
}
