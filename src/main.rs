//! The `radscore` command: serve the API, run workers, migrate, or extract offline.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use radscore::batch::{self, Naming, OutputSpec, load_volume};
use radscore::config::Config;
use radscore::features::{ExtractionSettings, Location};
use radscore::pipeline::{self, LesionRequest};

#[derive(Parser)]
#[command(
    name = "radscore",
    version,
    about = "Radiomics response prediction service (IBSI 1)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API, with an in-process worker pool.
    Serve {
        #[command(flatten)]
        config: Config,
        /// Address to listen on.
        #[arg(long, env = "RADSCORE_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        /// Serve the API only; jobs are left to `radscore worker` processes.
        #[arg(long)]
        no_workers: bool,
        /// Serve /healthz, /readyz and /metrics on this address instead of `--bind` (a
        /// private port for probes and Prometheus).
        #[arg(long, env = "RADSCORE_ADMIN_ADDR")]
        admin_addr: Option<String>,
    },
    /// Run a worker pool only (no HTTP).
    Worker {
        #[command(flatten)]
        config: Config,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        config: Config,
    },
    /// Run one retention pass and exit: purge uploads older than RADSCORE_RETENTION_HOURS
    /// that no queued or running job uses, and retry unfinished blob removals.
    Purge {
        #[command(flatten)]
        config: Config,
    },
    /// Exit 0 when the server at RADSCORE_BIND (or RADSCORE_ADMIN_ADDR, when set) answers
    /// GET /healthz with 200 (the container HEALTHCHECK; no curl needed).
    Healthcheck {
        /// Address the server listens on (0.0.0.0 or [::] is probed on loopback).
        #[arg(long, env = "RADSCORE_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        /// The admin address serving /healthz instead of `--bind`, when one is configured.
        #[arg(long, env = "RADSCORE_ADMIN_ADDR")]
        admin_addr: Option<String>,
    },
    /// Extract features offline (the same pipeline as the service).
    Extract(ExtractArgs),
    /// Write a synthetic demo case: DICOM series (+ zip), NIfTI label map, lesions.json.
    DemoData {
        /// Output directory.
        #[arg(long, default_value = "sample")]
        out: PathBuf,
        /// Random seed (the same seed writes the same case).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the IBSI 1 compliance self-check and write it as markdown.
    Compliance {
        /// Output file (markdown); stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also run configurations A–E on the IBSI CT phantom: its `nifti` directory
        /// (holding `image/phantom.nii.gz` and `mask/mask.nii.gz`). Not bundled (CC BY-NC).
        #[arg(long, requires = "reference_csv")]
        ct_phantom_dir: Option<PathBuf>,
        /// IBSI reference values in long format (`ibsi1_reference_values_long.csv`).
        #[arg(long)]
        reference_csv: Option<PathBuf>,
    },
    /// Print the PyRadiomics ↔ IBSI feature-name table (markdown), or write it into a
    /// document between its markers.
    FeatureNames {
        /// Replace the generated table in this markdown file (between its markers).
        #[arg(long)]
        update: Option<PathBuf>,
    },
    /// Perturb lesions like a test-retest study, re-extract, and report per location and
    /// feature the ICC(3,1) with its 95 % CI (CSV, JSON and a PNG heat map).
    Robustness(RobustnessArgs),
    /// The extraction benchmark (`scripts/bench.sh extraction` runs it): write the
    /// synthetic CT, or time one case's path from DICOM files to features with its peak
    /// memory.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Create, list and revoke API keys (admin; talks to the database directly).
    Keys {
        /// Database URL, as for `serve`.
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://var/radscore.db")]
        database_url: String,
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Read the audit log.
    Audit {
        /// Database URL, as for `serve`.
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://var/radscore.db")]
        database_url: String,
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Print the extraction settings, their hash or the feature names.
    Settings {
        /// Settings file (default: bundled).
        #[arg(long)]
        settings: Option<PathBuf>,
        /// What to print.
        #[arg(long, value_enum, default_value = "json")]
        print: SettingsOutput,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Write the synthetic 512 × 512 × 300 CT with lesions of 10, 25, 50, 100 and 200 cm³
    /// (DICOM series, NIfTI label map, lesions.json; about 160 MB).
    Generate {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Random seed (the same seed writes the same case).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Time one case from its DICOM files to features, stage by stage, with the peak
    /// resident memory after each stage; prints a JSON report. Run it in its own process.
    Run {
        /// DICOM series directory.
        #[arg(long)]
        series: PathBuf,
        /// Segmentation (label map, DICOM SEG or RTSTRUCT).
        #[arg(long)]
        mask: PathBuf,
        /// Lesion as LABEL:LOCATION (repeatable); default: every label, location `other`.
        #[arg(long = "lesion")]
        lesions: Vec<String>,
        /// Feature set: `job` (the bundled location profiles) or `ibsi` (every IBSI family).
        #[arg(long, value_enum, default_value = "job")]
        features: radscore::benchmark::FeatureSet,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant and print it once on stdout (only its hash is stored).
    Create {
        /// Tenant (trial or site) the key belongs to: letters, digits, '.', '_', '-'.
        #[arg(long)]
        tenant: String,
        /// A label for the key (who or what uses it).
        #[arg(long)]
        name: Option<String>,
        /// The key may also read its tenant's audit log (GET /v1/audit).
        #[arg(long)]
        admin: bool,
    },
    /// Revoke a key by its id (the part after `rsk_`, as `keys list` shows it).
    Revoke {
        /// Key id.
        id: String,
    },
    /// List keys (never the keys themselves): id, tenant, status, admin, name, created.
    List,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Write audit events as JSON lines, oldest first.
    Export {
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// Only events at or after this RFC 3339 time (e.g. 2026-01-31T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Output file; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SettingsOutput {
    Json,
    Hash,
    Names,
}

#[derive(clap::Args)]
struct ExtractArgs {
    /// DICOM series: a directory or a zip file; or a NIfTI (.nii/.nii.gz) or NRRD (.nrrd)
    /// image.
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    series: Option<PathBuf>,
    /// Segmentation: NIfTI or NRRD label map, DICOM SEG or RTSTRUCT (recognised by content).
    #[arg(
        long,
        required_unless_present = "manifest",
        conflicts_with = "manifest"
    )]
    mask: Option<PathBuf>,
    /// Batch: a CSV with columns image, mask and optionally label, location (one lesion
    /// per row); cases run in parallel into one CSV, and a rerun skips the rows already
    /// in the output.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Parallel cases with --manifest (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Lesion as LABEL:LOCATION (repeatable); default: every label (with --params: its
    /// label), location `other`.
    #[arg(long = "lesion", conflicts_with = "manifest")]
    lesions: Vec<String>,
    /// Output file: `.csv` or `.json` (a manifest run writes CSV).
    #[arg(long)]
    out: PathBuf,
    /// Extraction settings file (default: bundled).
    #[arg(long, conflicts_with = "params")]
    settings: Option<PathBuf>,
    /// PyRadiomics parameter file (YAML or JSON) instead of radscore settings; keys that
    /// radscore cannot honour are refused by name.
    #[arg(long)]
    params: Option<PathBuf>,
    /// Feature column names: IBSI tags, or PyRadiomics columns (default: pyradiomics with
    /// --params, else ibsi).
    #[arg(long, value_enum)]
    naming: Option<Naming>,
    /// Also score lesions with the model in this directory.
    #[arg(long, conflicts_with = "manifest")]
    model: Option<PathBuf>,
    /// Path of libonnxruntime.so (with --model).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    ort_dylib: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct RobustnessArgs {
    /// Cases as a JSON manifest (see `radscore::robustness::cases`); instead of --series.
    #[arg(long, conflicts_with_all = ["series", "mask"])]
    manifest: Option<PathBuf>,
    /// One case: DICOM directory or zip, or a NIfTI image.
    #[arg(long, requires = "mask")]
    series: Option<PathBuf>,
    /// Segmentation of --series: NIfTI label map or DICOM SEG.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Lesion as LABEL:LOCATION (repeatable; with --series); default: every label, `other`.
    #[arg(long = "lesion")]
    lesions: Vec<String>,
    /// Output directory: robustness.csv, robustness.json, robustness.png.
    #[arg(long)]
    out_dir: PathBuf,
    /// Number of perturbations per lesion (raters of the ICC).
    #[arg(long, default_value_t = 10)]
    perturbations: usize,
    /// Seed of every random draw; the same seed gives the same output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Largest rotation, degrees (axial plane).
    #[arg(long, default_value_t = 10.0)]
    max_rotation_deg: f64,
    /// Largest translation per axis, voxels.
    #[arg(long, default_value_t = 0.5)]
    max_translation_vox: f64,
    /// Standard deviation of the added noise, HU (0: none).
    #[arg(long, default_value_t = 10.0)]
    noise_sd_hu: f64,
    /// No ±1 voxel dilation / erosion.
    #[arg(long)]
    no_volume_adaptation: bool,
    /// No supervoxel contour randomisation.
    #[arg(long)]
    no_contour_randomisation: bool,
    /// ICC at or above this is `good`.
    #[arg(long, default_value_t = 0.75)]
    good: f64,
    /// ICC at or above this is `excellent`.
    #[arg(long, default_value_t = 0.9)]
    excellent: f64,
    /// Extraction settings file (default: bundled).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    radscore::telemetry::init_tracing();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        Command::Serve {
            config,
            bind,
            no_workers,
            admin_addr,
        } => runtime.block_on(serve(config, bind, no_workers, admin_addr)),
        Command::Worker { config } => runtime.block_on(work(config)),
        Command::Migrate { config } => runtime.block_on(async {
            radscore::store::Db::connect(&config.database_url).await?;
            tracing::info!("migrations applied");
            Ok(())
        }),
        Command::Purge { config } => runtime.block_on(purge(config)),
        Command::Healthcheck { bind, admin_addr } => {
            healthcheck(admin_addr.as_ref().unwrap_or(&bind))
        }
        Command::Keys {
            database_url,
            action,
        } => runtime.block_on(keys(&database_url, action)),
        Command::Audit {
            database_url,
            action: AuditCommand::Export { tenant, since, out },
        } => runtime.block_on(audit_export(&database_url, tenant, since, out)),
        Command::Extract(args) => extract(args),
        Command::Robustness(args) => robustness(args),
        Command::Compliance {
            out,
            ct_phantom_dir,
            reference_csv,
        } => {
            let mut reports = vec![radscore::compliance::digital_phantom()?];
            if let (Some(dir), Some(csv_path)) = (ct_phantom_dir, reference_csv) {
                let read = |p: PathBuf| {
                    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
                };
                let image = read(dir.join("image/phantom.nii.gz"))?;
                let mask = read(dir.join("mask/mask.nii.gz"))?;
                let table = String::from_utf8_lossy(&read(csv_path)?).into_owned();
                for config in ['A', 'B', 'C', 'D', 'E'] {
                    reports.push(radscore::compliance::ct_phantom(
                        &image, &mask, &table, config,
                    )?);
                }
            }
            let md = radscore::compliance::to_markdown(&reports);
            match out {
                Some(path) => std::fs::write(&path, md)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print_stdout(md.trim_end())?,
            }
            Ok(())
        }
        Command::DemoData { out, seed } => {
            let case =
                radscore::demo::generate(&out, seed, &radscore::demo::DemoOptions::default())?;
            print_stdout(&serde_json::to_string_pretty(&case)?)
        }
        Command::FeatureNames { update } => match update {
            None => print_stdout(&radscore::pyradiomics::names::mapping_markdown()),
            Some(path) => {
                let doc = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let doc = radscore::pyradiomics::names::replace_generated_table(&doc)?;
                std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))
            }
        },
        Command::Bench(BenchCommand::Generate { out, seed }) => {
            let case = radscore::demo::generate_bench_ct(&out, seed)?;
            print_stdout(&serde_json::to_string_pretty(&case)?)
        }
        Command::Bench(BenchCommand::Run {
            series,
            mask,
            lesions,
            features,
        }) => {
            let requests = lesions
                .iter()
                .map(|s| parse_lesion(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let settings = features.settings(&ExtractionSettings::bundled());
            let report = radscore::benchmark::run(&series, &mask, &requests, &settings, features)?;
            print_stdout(&serde_json::to_string_pretty(&report)?)
        }
        Command::Settings { settings, print } => {
            let s = read_settings(settings.as_deref())?;
            match print {
                SettingsOutput::Json => print_stdout(&serde_json::to_string_pretty(&s)?)?,
                SettingsOutput::Hash => print_stdout(&s.hash())?,
                SettingsOutput::Names => print_stdout(&s.feature_names().join("\n"))?,
            }
            Ok(())
        }
    }
}

async fn serve(
    config: Config,
    bind: String,
    no_workers: bool,
    admin_addr: Option<String>,
) -> anyhow::Result<()> {
    let app = radscore::app::build(&config).await?;
    let shutdown = CancellationToken::new();
    let workers = (!no_workers).then(|| {
        let n = config.worker_count();
        tracing::info!(workers = n, "starting worker pool");
        tokio::spawn(radscore::jobs::run_worker_pool(
            app.jobs.clone(),
            n,
            shutdown.clone(),
        ))
    });
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let admin = match &admin_addr {
        Some(addr) => Some(serve_admin(addr, app.state.clone(), shutdown.clone()).await?),
        None => None,
    };
    tracing::info!(address = %listener.local_addr()?, "radscore listening");
    let token = shutdown.clone();
    let router = radscore::api::router_with(app.state, admin.is_none());
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            token.cancel();
        })
        .await?;
    if let Some(w) = workers {
        w.await.context("worker pool")?;
    }
    if let Some(a) = admin {
        a.await.context("admin server")??;
    }
    Ok(())
}

/// Serve the probes and metrics on `addr` until `shutdown`.
async fn serve_admin(
    addr: &str,
    state: radscore::api::AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin address {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, "admin endpoints listening");
    let router = radscore::api::admin_router(state);
    Ok(tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }))
}

async fn work(config: Config) -> anyhow::Result<()> {
    let app = radscore::app::build(&config).await?;
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        token.cancel();
    });
    radscore::jobs::run_worker_pool(app.jobs, config.worker_count(), shutdown).await;
    Ok(())
}

async fn purge(config: Config) -> anyhow::Result<()> {
    let policy = config.retention()?;
    let db = radscore::store::Db::connect(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", config.database_url))?;
    let location = config.blob_location()?;
    let blobs = radscore::store::BlobStore::open(&location, &config.s3_options())?;
    let now = radscore::store::now_ms();
    let report = radscore::jobs::retention::purge(&db, &blobs, policy.period, now).await?;
    print_stdout(&serde_json::to_string(&serde_json::json!({
        "retention_hours": config.retention_hours,
        "series_purged": report.series,
        "segmentations_purged": report.segmentations,
        "blob_removals_retried": report.blob_retries,
    }))?)
}

/// How long `radscore healthcheck` waits for the server (connect, send, answer).
const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// GET /healthz on the server listening at `bind`; Ok when it answers 200.
///
/// A plain HTTP/1.1 request over a loopback TCP socket: the runtime image has no curl, and
/// radscore's HTTP client crates are test-only, so this is the smallest probe that works.
fn healthcheck(bind: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    let mut addr: SocketAddr = bind
        .parse()
        .with_context(|| format!("RADSCORE_BIND '{bind}' is not an IP:port address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut stream = TcpStream::connect_timeout(&addr, HEALTHCHECK_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(HEALTHCHECK_TIMEOUT))?;
    stream.set_write_timeout(Some(HEALTHCHECK_TIMEOUT))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("none");
    if status != "200" {
        bail!("GET http://{addr}/healthz answered status {status}");
    }
    print_stdout("ok")
}

/// `radscore keys create|revoke|list`.
async fn keys(database_url: &str, action: KeysCommand) -> anyhow::Result<()> {
    let db = radscore::store::Db::connect(database_url).await?;
    match action {
        KeysCommand::Create {
            tenant,
            name,
            admin,
        } => {
            let (row, key) =
                radscore::api::auth::create_key(&db, &tenant, name.as_deref(), admin).await?;
            eprintln!(
                "created key {} for tenant '{}'{}; it is shown once, store it now",
                row.id,
                row.tenant_id,
                if admin { " (admin)" } else { "" }
            );
            print_stdout(&key)
        }
        KeysCommand::Revoke { id } => {
            if !db.revoke_api_key(&id, radscore::store::now_ms()).await? {
                bail!("no active key with id '{id}'");
            }
            eprintln!("revoked key {id}");
            Ok(())
        }
        KeysCommand::List => {
            let mut lines = vec!["id\ttenant\tstatus\tadmin\tname\tcreated_at".to_string()];
            for k in db.api_keys().await? {
                let status = if k.revoked_at_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                lines.push(format!(
                    "{}\t{}\t{status}\t{}\t{}\t{}",
                    k.id,
                    k.tenant_id,
                    if k.admin { "admin" } else { "-" },
                    k.name.as_deref().unwrap_or("-"),
                    rfc3339(k.created_at_ms),
                ));
            }
            print_stdout(&lines.join("\n"))
        }
    }
}

/// `radscore audit export`: JSON lines, oldest first.
async fn audit_export(
    database_url: &str,
    tenant: Option<String>,
    since: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let since_ms = match since.as_deref() {
        None => None,
        Some(text) => Some(
            radscore::api::audit::parse_rfc3339_ms(text)
                .with_context(|| format!("--since '{text}' is not an RFC 3339 time"))?,
        ),
    };
    let db = radscore::store::Db::connect(database_url).await?;
    let events = db.audit_events(tenant.as_deref(), since_ms).await?;
    let mut text = String::new();
    for event in &events {
        text.push_str(&radscore::api::audit::event_json(event).to_string());
        text.push('\n');
    }
    match out {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            use std::io::Write;
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
    }
}

/// Epoch milliseconds as RFC 3339 (UTC).
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested: finishing running jobs");
}

/// Print a line to stdout; a reader that closed the pipe early (`| head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn read_settings(path: Option<&Path>) -> anyhow::Result<ExtractionSettings> {
    match path {
        None => Ok(ExtractionSettings::bundled()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(ExtractionSettings::from_json(&text)?)
        }
    }
}

/// The settings, naming and PyRadiomics selection an extraction runs with, and the
/// parameter file's label.
fn output_spec(args: &ExtractArgs) -> anyhow::Result<(OutputSpec, Option<u32>)> {
    let (settings, selection, label) = match &args.params {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let params = radscore::pyradiomics::params::parse(&text, &name)?;
            for missing in &params.unavailable {
                tracing::warn!(feature = %missing, "PyRadiomics feature not computed by radscore");
            }
            (params.settings, Some(params.selection), Some(params.label))
        }
        None => (read_settings(args.settings.as_deref())?, None, None),
    };
    let naming = args.naming.unwrap_or(if selection.is_some() {
        Naming::Pyradiomics
    } else {
        Naming::Ibsi
    });
    let spec = OutputSpec {
        settings,
        naming,
        selection,
    };
    Ok((spec, label))
}

fn extract(args: ExtractArgs) -> anyhow::Result<()> {
    let (spec, params_label) = output_spec(&args)?;
    if let Some(manifest) = &args.manifest {
        return extract_manifest(&args, manifest, &spec, params_label);
    }
    let (Some(series), Some(mask)) = (&args.series, &args.mask) else {
        bail!("--series and --mask are required without --manifest");
    };
    let settings = &spec.settings;
    let (volume, frame_of_reference) = load_volume(series)?;
    let mask_bytes = std::fs::read(mask).with_context(|| format!("reading {}", mask.display()))?;
    let mask_name = mask.file_name().map(|n| n.to_string_lossy().to_string());
    let (_, seg) = pipeline::read_segmentation(
        &mask_bytes,
        mask_name.as_deref(),
        &volume.grid,
        frame_of_reference.as_deref(),
    )?;
    let requests = match params_label {
        Some(label) if args.lesions.is_empty() => vec![LesionRequest {
            label,
            location: Location::Other,
        }],
        _ => parse_lesions(&args.lesions, &seg)?,
    };

    let bar = progress_bar(args.quiet, requests.len(), "lesions");
    let total = requests.len() as f64;
    let report = |p: f64| bar.set_position((p * total).round() as u64);
    let lesions = pipeline::extract_lesions(&volume, &seg, &requests, settings, &report);
    bar.finish_and_clear();

    let probabilities = match &args.model {
        None => vec![None; lesions.len()],
        Some(dir) => {
            let model = radscore::app::load_model(dir, args.ort_dylib.as_deref(), settings)?;
            let model = radscore::model::LoadedModel::Single(Arc::new(model));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(radscore::jobs::scoring::score(&model, &lesions))?
        }
    };
    write_output(&args.out, &spec, &lesions, &probabilities)
}

fn progress_bar(quiet: bool, len: usize, unit: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} {{elapsed_precise}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn extract_manifest(
    args: &ExtractArgs,
    manifest: &Path,
    spec: &OutputSpec,
    params_label: Option<u32>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let cases = batch::read_manifest(&text, params_label.unwrap_or(1))?;
    let workers = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let bar = progress_bar(args.quiet, cases.len(), "cases");
    let summary = batch::run(
        &cases,
        &batch::manifest_base(manifest),
        spec,
        &args.out,
        workers,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    tracing::info!(
        skipped = summary.skipped,
        computed = summary.computed,
        failed = summary.failed,
        "batch extraction finished"
    );
    Ok(())
}

fn robustness(args: RobustnessArgs) -> anyhow::Result<()> {
    use radscore::robustness::{self, PerturbationLimits, RobustnessOptions, Thresholds};

    let settings = read_settings(args.settings.as_deref())?;
    let options = RobustnessOptions {
        perturbations: args.perturbations,
        seed: args.seed,
        limits: PerturbationLimits {
            max_rotation_deg: args.max_rotation_deg,
            max_translation_vox: args.max_translation_vox,
            noise_sd_hu: args.noise_sd_hu,
            volume_adaptation: !args.no_volume_adaptation,
            contour_randomisation: !args.no_contour_randomisation,
        },
        thresholds: Thresholds {
            good: args.good,
            excellent: args.excellent,
        },
    };
    options.validate()?;
    let cases = match (&args.manifest, &args.series, &args.mask) {
        (Some(manifest), _, _) => robustness::cases::load_manifest(manifest)?,
        (None, Some(series), Some(mask)) => {
            let mut case = robustness::cases::load_case("case-1".into(), series, mask, vec![])?;
            case.lesions = parse_lesions(&args.lesions, &case.segmentation)?;
            vec![case]
        }
        _ => bail!("give either --manifest or --series with --mask"),
    };

    let total = cases.iter().map(|c| c.lesions.len()).sum::<usize>();
    let bar = progress_bar(args.quiet, total, "lesions");
    let mut report = |p: f64| bar.set_position((p * total as f64).round() as u64);
    let result = robustness::analyse(&cases, &settings, &options, &mut report)?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let path = |name: &str| args.out_dir.join(name);
    let csv_file = std::fs::File::create(path("robustness.csv"))
        .with_context(|| format!("creating {}", path("robustness.csv").display()))?;
    result.write_csv(csv_file)?;
    std::fs::write(path("robustness.json"), serde_json::to_vec_pretty(&result)?)
        .with_context(|| format!("writing {}", path("robustness.json").display()))?;
    let excluded: Vec<_> = result
        .lesions
        .iter()
        .filter(|l| l.status != "included")
        .collect();
    if result.features.is_empty() {
        // Nothing to draw: the table and JSON (with each lesion's reason) are still written.
        let reasons: Vec<String> = excluded
            .iter()
            .map(|l| {
                format!(
                    "{} label {}: {}",
                    l.case_id,
                    l.label,
                    l.reason.as_deref().unwrap_or("-")
                )
            })
            .collect();
        bail!(
            "no ICC could be computed ({} of {} lesions excluded{}); robustness.csv and \
             robustness.json are in {}, no heat map was drawn",
            excluded.len(),
            result.lesions.len(),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", reasons.join("; "))
            },
            args.out_dir.display()
        );
    }
    robustness::heatmap::write_png(&result, &path("robustness.png"))?;
    let excluded = excluded.len();
    print_stdout(&format!(
        "{} lesions ({excluded} excluded), {} location/feature rows -> {}",
        result.lesions.len(),
        result.features.len(),
        args.out_dir.display()
    ))
}

fn parse_lesions(
    specs: &[String],
    seg: &radscore::image::Segmentation,
) -> anyhow::Result<Vec<LesionRequest>> {
    if specs.is_empty() {
        return Ok(seg
            .lesions
            .iter()
            .map(|l| LesionRequest {
                label: l.label,
                location: Location::Other,
            })
            .collect());
    }
    specs.iter().map(|s| parse_lesion(s)).collect()
}

/// One `--lesion LABEL:LOCATION`.
fn parse_lesion(s: &str) -> anyhow::Result<LesionRequest> {
    let (label, loc) = s
        .split_once(':')
        .with_context(|| format!("--lesion '{s}' is not LABEL:LOCATION"))?;
    let label: u32 = label
        .parse()
        .with_context(|| format!("--lesion '{s}': label is not an integer"))?;
    let Some(location) = Location::parse(loc) else {
        bail!("--lesion '{s}': unknown location '{loc}'");
    };
    Ok(LesionRequest { label, location })
}

fn write_output(
    out: &Path,
    spec: &OutputSpec,
    lesions: &[pipeline::LesionFeatures],
    probabilities: &[Option<f64>],
) -> anyhow::Result<()> {
    let settings = &spec.settings;
    let is_csv = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut w =
            csv::Writer::from_path(out).with_context(|| format!("creating {}", out.display()))?;
        let mut header = vec!["label".to_string()];
        header.extend(spec.columns());
        w.write_record(&header)?;
        for (l, p) in lesions.iter().zip(probabilities) {
            let mut row = vec![l.request.label.to_string()];
            row.extend(spec.row(l, *p));
            w.write_record(&row)?;
        }
        w.flush()?;
    } else {
        let lesions: Vec<serde_json::Value> = lesions
            .iter()
            .zip(probabilities)
            .map(|(l, p)| {
                let mut v = serde_json::to_value(radscore::jobs::LesionResult::new(l, *p))
                    .unwrap_or_default();
                if spec.naming == Naming::Pyradiomics
                    && let (Ok(features), Some(obj)) = (&l.features, v.as_object_mut())
                {
                    let renamed = radscore::pyradiomics::names::to_pyradiomics_all(
                        features,
                        settings.for_location(l.request.location),
                        spec.selection.as_ref(),
                    );
                    obj.insert("features".into(), feature_map(&renamed));
                }
                v
            })
            .collect();
        let names = spec.feature_columns();
        let doc = serde_json::json!({
            "settings_name": settings.name,
            "settings_hash": settings.hash(),
            "feature_names": names,
            "lesions": lesions,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn feature_map(features: &[radscore::features::Feature]) -> serde_json::Value {
    features
        .iter()
        .filter_map(|f| serde_json::Number::from_f64(f.value).map(|n| (f.name.clone(), n.into())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
