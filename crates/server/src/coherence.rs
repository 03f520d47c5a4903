//! Cache coherence across nodes sharing one store: every node caches KMS keys and aliases,
//! secrets, parameters and the IAM directory, and forgets what another node changed as soon
//! as the store's change feed ([`keyhold_store::changes`]) says so.
//!
//! A change drops the named entries (they are read from the store again on their next use),
//! except a parameter's, which is read again at once into its cached (account, Region)
//! scope (the scope is cached whole: a parameter missing from it would not exist); an IAM
//! change reloads the directory; [`Change::Everything`] (the feed reconnected, or
//! may have missed a change) drops every cache and reloads IAM. Changes that arrive while
//! one is applied are applied together, so that a burst of IAM changes costs one reload.
//! Each service counts a change it is told of like one of its own writes, so that a read of
//! the store that overlapped it is not cached (see [`crate::write_locks`]).
//!
//! A store that only one process opens (SQLite) has no feed, and this does not run.

use std::sync::Arc;

use keyhold_store::{Change, ChangeFeed};
use tokio::sync::watch;

use crate::iam::IamService;
use crate::kms::KmsService;
use crate::ops::metrics::Metrics;
use crate::params::SsmService;
use crate::secrets::SecretsService;

/// The caches the feed keeps coherent.
pub(crate) struct Caches {
    pub kms: Arc<KmsService>,
    pub secrets: Arc<SecretsService>,
    pub ssm: Arc<SsmService>,
    pub iam: Arc<IamService>,
    pub metrics: Arc<Metrics>,
}

/// Applies the feed's changes until it ends or `stop` says so.
pub(crate) async fn run(caches: Caches, mut feed: ChangeFeed, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            change = feed.next() => {
                let Some(first) = change else { return };
                let mut batch = vec![first];
                while let Some(more) = feed.try_next() {
                    batch.push(more);
                }
                caches.apply(batch).await;
            }
            _ = stop.changed() => return,
        }
    }
}

impl Caches {
    async fn apply(&self, batch: Vec<Change>) {
        if batch.contains(&Change::Everything) {
            self.metrics.invalidation("everything");
            self.kms.forget_everything();
            self.secrets.forget_everything();
            self.ssm.forget_everything();
            self.reload_iam().await;
            return;
        }
        let mut iam = false;
        // Each parameter is read again once per batch, after the others are forgotten.
        let mut params: Vec<String> = Vec::new();
        for change in batch {
            match change {
                Change::Key(key_id) => {
                    self.metrics.invalidation("key");
                    self.kms.forget_key(&key_id);
                }
                Change::Alias {
                    account,
                    region,
                    name,
                } => {
                    self.metrics.invalidation("alias");
                    self.kms.forget_alias(&account, &region, &name);
                }
                Change::Secret(arn) => {
                    self.metrics.invalidation("secret");
                    self.secrets.forget(&arn);
                }
                Change::Param(arn) => {
                    self.metrics.invalidation("param");
                    if !params.contains(&arn) {
                        params.push(arn);
                    }
                }
                Change::Iam => {
                    self.metrics.invalidation("iam");
                    iam = true;
                }
                Change::Everything => {}
            }
        }
        for arn in params {
            self.ssm.refresh_param(&arn).await;
        }
        if iam {
            self.reload_iam().await;
        }
    }

    async fn reload_iam(&self) {
        if let Err(e) = self.iam.reload().await {
            tracing::error!(error = ?e, "reloading IAM after another node changed it failed");
        }
    }
}
