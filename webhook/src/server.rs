//! Starting and stopping the webhook: certificates, policies, listeners, reload watchers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::service::TowerToHyperService;
use kspy_certs::{ClientCaReload, ReloadOutcome, ReloadingClientVerifier, ReloadingResolver};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::engine_cell::EngineCell;
use crate::error::WebhookError;
use crate::metrics::Metrics;
use crate::policy_watch;
use crate::state::AppState;

/// Longest the admin port waits for its open requests at shutdown.
const ADMIN_GRACE: Duration = Duration::from_secs(5);

/// Asks a running server to shut down. Cloneable; triggering twice is harmless.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Starts a graceful shutdown: `/readyz` fails at once; after the configured shutdown
    /// delay the listener closes and in-flight reviews are finished.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// A server started by [`start`].
#[derive(Debug)]
pub struct RunningServer {
    /// The HTTPS address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The admin address actually bound.
    pub admin_addr: SocketAddr,
    shutdown: ShutdownHandle,
    metrics: Arc<Metrics>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// A handle that can trigger shutdown from elsewhere (a signal handler, a test).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The server's metrics (what `/metrics` renders).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Triggers a graceful shutdown and waits until it is complete.
    pub async fn shutdown(self) {
        self.shutdown.shutdown();
        self.wait().await;
    }

    /// Waits until the server has stopped (after a shutdown was triggered).
    pub async fn wait(self) {
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "server task failed");
        }
    }
}

/// Runs the server until `signal` completes, then shuts down gracefully.
pub async fn run(
    config: ServerConfig,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), WebhookError> {
    let server = start(config).await?;
    let handle = server.shutdown_handle();
    tokio::select! {
        () = signal => {
            tracing::info!("shutdown requested");
            handle.shutdown();
        }
        () = wait_for_trigger(&handle) => {}
    }
    server.wait().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_trigger(handle: &ShutdownHandle) {
    let mut rx = handle.0.subscribe();
    crate::serve::stopped(&mut rx).await;
}

/// Checks the configuration ([`ServerConfig::validate`]), loads the certificate and the
/// policies, binds both listeners and starts serving. Fails (without serving anything) if the
/// configuration cannot work or the certificate or any policy does not load.
pub async fn start(config: ServerConfig) -> Result<RunningServer, WebhookError> {
    config.validate()?;
    let resolver = Arc::new(ReloadingResolver::load(&config.tls.cert, &config.tls.key)?);
    let client_verifier = match &config.client_auth {
        None => None,
        Some(auth) => {
            let verifier = ReloadingClientVerifier::load(&auth.ca, auth.names.clone())
                .map_err(WebhookError::ClientCa)?;
            tracing::info!(
                client_ca = %auth.ca.display(),
                cas = %verifier.ca_subjects().join("; "),
                names = %if auth.names.is_empty() {
                    "any".to_owned()
                } else {
                    auth.names.join(", ")
                },
                "client certificates required on the webhook port"
            );
            Some(Arc::new(verifier))
        }
    };
    let tls = crate::tls::server_config(
        resolver.clone(),
        client_verifier
            .clone()
            .map(|v| v as Arc<dyn rustls::server::danger::ClientCertVerifier>),
    )?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let dir = config.policies_dir.clone();
    let settings = config.settings.clone();
    let (engine, fingerprint) =
        tokio::task::spawn_blocking(move || policy_watch::load_at_start(&dir, settings))
            .await
            .map_err(|err| WebhookError::Io {
                context: "loading policies".into(),
                error: std::io::Error::other(err.to_string()),
            })??;
    let names = engine.policies().names().join(", ");
    let count = engine.policies().len();
    tracing::info!(policies = %config.policies_dir.display(), count, names = %names, "policies loaded");
    policy_watch::warn_about(&config.policies_dir, engine.policies());

    let metrics = Arc::new(Metrics::new());
    metrics.set_policies_loaded(count);
    metrics.set_cert_expiry(resolver.not_after());

    let listener = crate::listen::bind(config.addr, "--addr").await?;
    let admin_listener = crate::listen::bind(config.admin_addr, "--admin-addr").await?;
    let addr = local_addr(&listener)?;
    let admin_addr = local_addr(&admin_listener)?;

    let engine = Arc::new(EngineCell::new(engine));
    let state = Arc::new(AppState {
        engine: engine.clone(),
        metrics: metrics.clone(),
        resolver: resolver.clone(),
        max_body_bytes: config.max_body_bytes,
        body_budget: crate::body_budget::BodyBudget::new(
            config.max_buffered_bytes,
            config.max_body_bytes,
            metrics.clone(),
        ),
        max_buffered_bytes: config.max_buffered_bytes,
        review_timeout: config.review_timeout,
        judges: crate::judge_pool::JudgePool::new(config.judge_threads).map_err(|error| {
            WebhookError::Io {
                context: "starting the judging threads".into(),
                error,
            }
        })?,
        namespaces: Arc::new(crate::namespaces::NamespaceLookup::new(
            config.namespaces.clone(),
        )),
        events: match &config.events {
            crate::events::EventSink::Off => None,
            crate::events::EventSink::Api { client, instance } => {
                Some(crate::events::EventRecorder::start(
                    client.clone(),
                    instance.clone(),
                    metrics.clone(),
                    config.event_series,
                ))
            }
        },
        fault_injection: config.fault_injection,
        accepting: AtomicBool::new(true),
        unmatched_pod_creates: crate::serve::LogThrottle::new(
            crate::review::UNMATCHED_POD_CREATE_LOG_EVERY,
        ),
    });

    let (tx, rx) = watch::channel(false);
    let shutdown = ShutdownHandle(Arc::new(tx));

    // Certificate reloads.
    let cert_metrics = metrics.clone();
    let cert_watch = resolver.watch(config.reload_interval, move |outcome| match outcome {
        ReloadOutcome::Reloaded { not_after } => cert_metrics.cert_reload_succeeded(*not_after),
        ReloadOutcome::Failed(_) => cert_metrics.cert_reload_failed(),
        ReloadOutcome::Unchanged => {}
    });
    drop(resolver);

    // Client CA reloads, at the same interval.
    let client_ca_watch = client_verifier.map(|verifier| {
        let metrics = metrics.clone();
        verifier.watch(config.reload_interval, move |outcome| match outcome {
            ClientCaReload::Reloaded { .. } => metrics.client_ca_reload_succeeded(),
            ClientCaReload::Failed(_) => metrics.client_ca_reload_failed(),
            ClientCaReload::Unchanged => {}
        })
    });

    // Policy reloads.
    let policy_watch = policy_watch::spawn(
        config.policies_dir.clone(),
        config.settings.clone(),
        config.reload_interval,
        fingerprint,
        engine,
        metrics.clone(),
        rx.clone(),
    );

    // Admin port: plain HTTP, stops after the webhook port. The same accept loop and
    // deadlines as the webhook port, with fewer connections (admin.rs).
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(crate::serve::serve(
        admin_listener,
        crate::serve::Plain,
        TowerToHyperService::new(crate::admin::router(state.clone())),
        admin_stop_rx,
        ADMIN_GRACE,
        crate::admin::limits(config.connection_limits),
        None,
    ));

    // The webhook port.
    let service = TowerToHyperService::new(crate::routes::router(state.clone()));
    let (serve_stop_tx, serve_stop_rx) = watch::channel(false);
    let grace = config.shutdown_grace;
    let serve_task = tokio::spawn(crate::serve::serve(
        listener,
        acceptor,
        service,
        serve_stop_rx,
        grace,
        config.connection_limits,
        Some(state.metrics.clone()),
    ));

    tracing::info!(%addr, %admin_addr, "kspy-webhook listening");

    let delay = config.shutdown_delay;
    let mut trigger = rx;
    let task = tokio::spawn(async move {
        crate::serve::stopped(&mut trigger).await;
        state.accepting.store(false, Ordering::Relaxed);
        if !delay.is_zero() {
            tracing::info!(
                delay_seconds = delay.as_secs_f64(),
                "not ready; still serving during the shutdown delay"
            );
            tokio::time::sleep(delay).await;
        }
        serve_stop_tx.send_replace(true);
        if let Err(err) = serve_task.await {
            tracing::error!(error = %err, "webhook listener task failed");
        }
        // Every review has been answered; post the Events they queued.
        if let Some(events) = &state.events {
            events.drain(Duration::from_secs(5)).await;
        }
        admin_stop_tx.send_replace(true);
        // The loop itself waits at most ADMIN_GRACE for open connections.
        if let Err(err) = admin_task.await {
            tracing::error!(error = %err, "admin server task failed");
        }
        cert_watch.abort();
        if let Some(watch) = client_ca_watch {
            watch.abort();
        }
        let _ = policy_watch.await;
    });

    Ok(RunningServer {
        addr,
        admin_addr,
        shutdown,
        metrics,
        task,
    })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, WebhookError> {
    listener.local_addr().map_err(|error| WebhookError::Io {
        context: "reading the bound address".into(),
        error,
    })
}
