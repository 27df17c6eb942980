//! Export of finished spans over OTLP/HTTP (protobuf), for `py:enable_tracing/1` with
//! `exporter => otlp`.
//!
//! Spans reach the exporter through `Tee`, the span processor `spans` builds its provider
//! with: it hands every finished span to the in-memory collector (so `get_traces/0` keeps
//! working) and, while an exporter runs, offers a copy to a bounded queue. Offering never
//! waits: a full queue drops the span and counts it, so a dead or slow collector costs the
//! code that ends spans nothing but that count.
//!
//! One thread (`py-otlp-export`) runs a single-threaded tokio runtime that drains the
//! queue in batches and posts them with `opentelemetry-otlp`'s HTTP exporter. The thread
//! exists from `start` to `stop`; `stop` lets it send what is queued for at most
//! `FLUSH_TIMEOUT` and then ends it. Lost spans are reported to the Erlang `logger` by a
//! warning, at most one every `WARN_EVERY`.

use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use opentelemetry_sdk::Resource;
use rustler::Encoder;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Spans waiting for export. Past this many, newly finished spans are dropped (and
/// counted) until the exporter catches up, so the queue holds at most this many spans
/// (a request span with its attributes is some hundreds of bytes).
pub const QUEUE_CAPACITY: usize = 2048;
/// Spans per export request.
const MAX_BATCH: usize = 512;
/// How long a finished span waits for others to share its request.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// One request, retries included, gives up after this long and its spans are dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(4);
/// `stop` sends what is queued for at most this long; what is left after it is dropped.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning about lost spans per this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Whether an exporter runs: the one thing a span end reads when none does.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The queue's sending side while an exporter runs.
static QUEUE: RwLock<Option<mpsc::Sender<SpanData>>> = RwLock::new(None);
/// The running exporter's thread and its stop signal.
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);
/// Held by `start` and `stop` throughout, so that two processes switching the exporter
/// at once do not both start one.
static SWITCHING: Mutex<()> = Mutex::new(());

/// Counts since the last `start` (`py_nif:tracing_export_stats/0`).
static QUEUED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static DROPPED_QUEUE_FULL: AtomicU64 = AtomicU64::new(0);
static DROPPED_EXPORT_FAILED: AtomicU64 = AtomicU64::new(0);

/// When the last warning about lost spans went out, across exporters, so that
/// restarting the exporter does not restart the rate limit.
static LAST_WARNING: Mutex<Option<Instant>> = Mutex::new(None);

struct Running {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
    /// The URL and service name it was started with.
    started_as: (String, String),
}

/// The span processor of the tracer provider: the in-memory collector `P`, plus the
/// export queue while an exporter runs.
#[derive(Debug)]
pub struct Tee<P>(pub P);

impl<P: SpanProcessor> SpanProcessor for Tee<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if ACTIVE.load(Ordering::Relaxed) {
            offer(span.clone());
        }
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

fn offer(span: SpanData) {
    let queue = QUEUE.read().unwrap_or_else(|e| e.into_inner());
    let Some(sender) = queue.as_ref() else { return };
    match sender.try_send(span) {
        Ok(()) => QUEUED.fetch_add(1, Ordering::Relaxed),
        Err(_) => DROPPED_QUEUE_FULL.fetch_add(1, Ordering::Relaxed),
    };
}

/// Where and as what spans are exported.
pub struct Config {
    /// The collector's base URL (`http://host:4318`, to which `/v1/traces` is added) or
    /// the full URL of its traces endpoint (any URL with a path).
    pub endpoint: String,
    /// The `service.name` resource attribute of every exported span.
    pub service_name: String,
}

/// Why `start` failed.
pub enum StartError {
    /// The endpoint is no URL the exporter can post to.
    Endpoint(String),
    /// The runtime or its thread could not be made.
    Runtime(String),
}

/// Start exporting (after stopping, and flushing, an exporter that runs already with
/// other settings; one with the same settings just goes on).
pub fn start(config: Config) -> Result<(), StartError> {
    let url = traces_url(&config.endpoint).map_err(StartError::Endpoint)?;
    let started_as = (url.clone(), config.service_name.clone());
    let _switching = lock(&SWITCHING);
    if lock(&RUNNING).as_ref().is_some_and(|r| r.started_as == started_as) {
        return Ok(());
    }
    stop_running();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| StartError::Endpoint(e.to_string()))?;
    exporter.set_resource(&Resource::builder().with_service_name(config.service_name).build());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // Only a host name to resolve needs one (IP addresses are not looked up).
        .max_blocking_threads(1)
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    // Before the thread starts: it reads them.
    for counter in [&QUEUED, &EXPORTED, &DROPPED_QUEUE_FULL, &DROPPED_EXPORT_FAILED] {
        counter.store(0, Ordering::Relaxed);
    }
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("py-otlp-export".into())
        .spawn(move || {
            runtime.block_on(serve(receiver, stop_rx, exporter, url));
            // Tasks of the HTTP client (an idle pooled connection) go with the runtime.
            runtime.shutdown_timeout(Duration::from_millis(200));
        })
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    *QUEUE.write().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    *lock(&RUNNING) = Some(Running { stop: stop_tx, thread, started_as });
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(())
}

/// Stop exporting: what is queued is sent for at most `FLUSH_TIMEOUT`, then the thread
/// ends. Nothing happens when no exporter runs.
pub fn stop() {
    let _switching = lock(&SWITCHING);
    stop_running();
}

fn stop_running() {
    let Some(running) = lock(&RUNNING).take() else { return };
    ACTIVE.store(false, Ordering::Relaxed);
    // Taking the sender waits for spans being offered; the queue then only drains.
    drop(QUEUE.write().unwrap_or_else(|e| e.into_inner()).take());
    let _ = running.stop.send(());
    // Bounded: `serve` gives up FLUSH_TIMEOUT after the stop signal.
    let _ = running.thread.join();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The queue and the counts, for `py_nif:tracing_export_stats/0`.
pub struct Stats {
    pub running: bool,
    pub queue_len: usize,
    pub queued: u64,
    pub exported: u64,
    pub dropped_queue_full: u64,
    pub dropped_export_failed: u64,
}

pub fn stats() -> Stats {
    let queue_len = QUEUE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, |s| s.max_capacity() - s.capacity());
    Stats {
        running: ACTIVE.load(Ordering::Relaxed),
        queue_len,
        queued: QUEUED.load(Ordering::Relaxed),
        exported: EXPORTED.load(Ordering::Relaxed),
        dropped_queue_full: DROPPED_QUEUE_FULL.load(Ordering::Relaxed),
        dropped_export_failed: DROPPED_EXPORT_FAILED.load(Ordering::Relaxed),
    }
}

/// The URL spans are posted to: a base URL (no path) gets the OTLP traces path, in
/// front of a query if it has one. `py.erl` checks the URL first; the exporter parses
/// it again when it is built.
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err("only http:// endpoints are supported (no TLS in this build)".into());
    };
    let (rest, suffix) = rest.split_at(rest.find(['?', '#']).unwrap_or(rest.len()));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(match path {
        "" | "/" => format!("http://{authority}/v1/traces{suffix}"),
        _ => endpoint.to_string(),
    })
}

/// The export thread's work: batches out of the queue until stopped, then what is left,
/// for at most `FLUSH_TIMEOUT`.
async fn serve(
    mut queue: mpsc::Receiver<SpanData>,
    stop: oneshot::Receiver<()>,
    exporter: opentelemetry_otlp::SpanExporter,
    url: String,
) {
    let full_seen = DROPPED_QUEUE_FULL.load(Ordering::Relaxed);
    let mut warner = Warner { url, failed: 0, full_seen, reason: String::new() };
    let drain = async {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut tick = tokio::time::interval(EXPORT_DELAY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        export(&exporter, &mut batch, &mut warner).await;
                    }
                    warner.report();
                }
                // Answers 0 once `stop` took the sender and the queue is empty.
                got = queue.recv_many(&mut batch, room) => {
                    if got == 0 || batch.len() >= MAX_BATCH {
                        export(&exporter, &mut batch, &mut warner).await;
                    }
                    if got == 0 {
                        break;
                    }
                }
            }
        }
    };
    let deadline = async {
        let _ = stop.await;
        tokio::time::sleep(FLUSH_TIMEOUT).await;
    };
    tokio::select! {
        _ = drain => {}
        _ = deadline => {
            // Whatever was still queued or being sent is lost.
            let lost = QUEUED
                .load(Ordering::Relaxed)
                .saturating_sub(EXPORTED.load(Ordering::Relaxed) + DROPPED_EXPORT_FAILED.load(Ordering::Relaxed));
            DROPPED_EXPORT_FAILED.fetch_add(lost, Ordering::Relaxed);
        }
    }
    let _ = exporter.shutdown();
}

async fn export(exporter: &opentelemetry_otlp::SpanExporter, batch: &mut Vec<SpanData>, warner: &mut Warner) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH));
    let count = spans.len() as u64;
    // The exporter bounds its retries by EXPORT_TIMEOUT already; this also bounds a
    // connection that accepts and never answers.
    let outcome = tokio::time::timeout(EXPORT_TIMEOUT + Duration::from_millis(500), exporter.export(spans)).await;
    match outcome {
        Ok(Ok(())) => {
            EXPORTED.fetch_add(count, Ordering::Relaxed);
        }
        Ok(Err(e)) => warner.failed(count, e.to_string()),
        Err(_) => warner.failed(count, format!("no answer within {} s", EXPORT_TIMEOUT.as_secs())),
    }
}

/// The rate-limited warning about lost spans.
struct Warner {
    url: String,
    /// Spans of failed requests not yet in a warning.
    failed: u64,
    /// `DROPPED_QUEUE_FULL` as of the last warning.
    full_seen: u64,
    reason: String,
}

impl Warner {
    fn failed(&mut self, count: u64, reason: String) {
        DROPPED_EXPORT_FAILED.fetch_add(count, Ordering::Relaxed);
        self.failed += count;
        self.reason = reason;
        self.report();
    }

    fn report(&mut self) {
        let full = DROPPED_QUEUE_FULL.load(Ordering::Relaxed).saturating_sub(self.full_seen);
        if self.failed == 0 && full == 0 {
            return;
        }
        let mut last = lock(&LAST_WARNING);
        if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        let mut text = format!("OTLP export to {}: {} spans lost", self.url, self.failed + full);
        if self.failed > 0 {
            text.push_str(&format!(", {} in requests that failed ({})", self.failed, self.reason));
        }
        if full > 0 {
            text.push_str(&format!(", {full} finished while the export queue was full ({QUEUE_CAPACITY} spans)"));
        }
        text.push_str(&format!("; spans are dropped until the collector answers (next report in {} s at the earliest)", WARN_EVERY.as_secs()));
        warn(&text);
        *last = Some(Instant::now());
        self.failed = 0;
        self.full_seen += full;
    }
}

/// `{py_warning, undefined, otlp_export, Text}` to the output handler, which logs it.
fn warn(text: &str) {
    let bytes = text.as_bytes().to_vec();
    crate::output::send_to_output_handler(crate::output::Payload::Record, bytes.len(), |e, who| {
        let mut text = rustler::NewBinary::new(e, bytes.len());
        text.as_mut_slice().copy_from_slice(&bytes);
        (crate::atoms::py_warning(), who, otlp_export(), rustler::Term::from(text)).encode(e)
    });
}

rustler::atoms! { otlp_export }
