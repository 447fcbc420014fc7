//! [`Gateway`]: the state every request handler shares, built once from
//! the configuration (tests build it the same way, with their own clock).

use std::sync::Arc;

use anyhow::Context;

use crate::audit::Recorder;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::content::Content;
use crate::content::assertion::AssertionSigner;
use crate::content::upstream::UpstreamClient;
use crate::embed::Provisioner;
use crate::jti::JtiLedger;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::policy::{Change, Policy, WriteGuard};
use crate::ratelimit::FailureLimiter;
use crate::session::SessionCodec;
use crate::store::feed::ChangeFeed;
use crate::store::{Store, StoreResult};
use crate::token::TimeRules;

pub struct Gateway {
    pub config: Config,
    pub clock: SharedClock,
    pub store: Store,
    pub policy: Arc<Policy>,
    pub recorder: Recorder,
    pub jti: JtiLedger,
    /// Writes the users of handshakes, in batches.
    pub provisioner: Provisioner,
    pub keys: KeyRing,
    pub sessions: SessionCodec,
    pub content: Content,
    pub upstream: UpstreamClient,
    pub assertions: AssertionSigner,
    pub limiter: FailureLimiter,
    pub metrics: Metrics,
    pub rules: TimeRules,
    /// Keys of clients registered with a `jwks_url`.
    pub jwks: crate::jwks::JwksCache,
    /// Announces and follows changes between instances.
    pub feed: ChangeFeed,
    /// Runs the demo host page at `/demo/`.
    pub demo: Option<crate::demo::DemoSettings>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Connects the database (migrating it), loads keys and the policy, and
    /// starts the background writers. Must run inside a Tokio runtime.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Gateway> {
        let store = Store::connect(&config.database.url, config.database.max_connections)
            .await
            .with_context(|| format!("connecting to {}", config.database.url.redacted()))?;
        // Claimed first: a second instance must not migrate a file that
        // another one serves.
        store.claim_instance()?;
        store.migrate().await.context("migrating the database")?;
        store.set_jti_memory_max(config.database.jti_memory_max);
        store.start_checkpoints();
        let feed = ChangeFeed::new(&store, config.database.url.expose())?;
        let listener = feed.listen().await.context("listening for changes")?;
        let policy = Arc::new(Policy::load(&store).await.context("loading the policy")?);
        feed.follow(listener, store.clone(), Arc::clone(&policy));
        let keys = KeyRing::load_or_generate(&config.keys.dir, clock.unix())
            .with_context(|| format!("loading keys from {}", config.keys.dir.display()))?;
        let rules = TimeRules {
            max_lifetime_secs: config.embed.max_token_lifetime_secs,
            clock_skew_secs: config.embed.clock_skew_secs,
            audience: Some(config.embed.audience.clone()).filter(|a| !a.is_empty()),
        };
        let recorder = Recorder::start(store.clone(), clock.clone());
        let provisioner = Provisioner::start(
            store.clone(),
            Arc::clone(&policy),
            feed.clone(),
            clock.clone(),
        );
        Ok(Gateway {
            jwks: crate::jwks::JwksCache::new().context("building the JWKS client")?,
            feed,
            recorder: recorder.clone(),
            jti: JtiLedger::start(recorder),
            provisioner,
            sessions: SessionCodec::new(&keys.session),
            content: Content::new(&config.content.templates_dir, &config.content.data_dir),
            upstream: UpstreamClient::new(&config).context("building the upstream HTTP client")?,
            assertions: AssertionSigner::new(&config.server.public_url),
            limiter: FailureLimiter::new(config.limits.failed_handshakes_per_minute),
            metrics: Metrics::default(),
            keys,
            rules,
            policy,
            store,
            clock,
            config,
            demo: None,
        })
    }

    /// Puts what changed in the database into memory. Callers hold the
    /// policy's write lock from their database write until this returns.
    pub async fn changed(&self, guard: &WriteGuard<'_>, changes: &[Change]) -> StoreResult<()> {
        for change in changes {
            self.policy.refresh(&self.store, guard, change).await?;
        }
        self.feed.announce(&self.store, changes).await;
        Ok(())
    }

    /// Housekeeping, run every minute: forgets `jti`s whose tokens can no
    /// longer pass the `exp` check, and prunes audit entries older than
    /// `[audit].retention_days`. Returns how many rows of each went.
    pub async fn maintain(&self) -> (u64, u64) {
        let jtis = match self.store.purge_jtis(self.now()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "purging used jtis failed");
                0
            }
        };
        let days = i64::from(self.config.audit.retention_days);
        let mut audit = 0;
        if days > 0 {
            self.recorder.flush().await;
            match self
                .store
                .prune_audit(self.now_millis() - days * 86_400_000)
                .await
            {
                Ok(n) => audit = n,
                Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
            }
        }
        if jtis + audit > 0 {
            tracing::info!(jtis, audit, "housekeeping removed expired rows");
        }
        (jtis, audit)
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// Now, in Unix milliseconds (the storage format).
    pub fn now_millis(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }
}
