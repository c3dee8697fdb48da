//! Airlock's benchmarks, each side by side with a plain baseline against one local HTTP server,
//! printed as a table of ratios. Run: `cargo run --release -p airlock-bench` (the process
//! and serve measurements build and spawn target/release/airlock). `--quick` for a
//! short run, `--airlock PATH` for another binary, `--only GROUP` to profile one group.

mod audit;
mod compile;
mod languages;
mod measure;
mod memory;
mod process;
mod report;
mod serve;
mod server;
mod sides;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use airlock::authoring::Language;
use memory::Side;
use report::{Goal, Row, Unit, median, percentile, print_table};
use server::{FAST_PATH, Server};
use sides::{Engine, plain_client, plain_op, workflow};

const CONCURRENCY: usize = 64;
const TMPFS: &str = "/dev/shm";

/// How much of each measurement to do.
struct Sizes {
    latency_samples: usize,
    latency_batch: usize,
    /// Runs per round of the one-webhook throughput measurement; a third of it for three.
    throughput_runs: usize,
    throughput_rounds: usize,
    process_runs: usize,
    compile_rounds: usize,
    memory_probes: usize,
    audit_appends: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                latency_samples: 400,
                latency_batch: 50,
                throughput_runs: 1_000,
                throughput_rounds: 2,
                process_runs: 6,
                compile_rounds: 1,
                memory_probes: 1,
                audit_appends: 100,
            }
        } else {
            Sizes {
                latency_samples: 3_000,
                latency_batch: 100,
                throughput_runs: 6_000,
                throughput_rounds: 4,
                process_runs: 30,
                compile_rounds: 3,
                memory_probes: 2,
                audit_appends: 500,
            }
        }
    }
}

struct Options {
    quick: bool,
    airlock: PathBuf,
    /// Build `airlock` first (unless `--airlock PATH` names another binary).
    build_airlock: bool,
    /// Run only this group (for profiling one measurement).
    only: Option<String>,
}

const GROUPS: [&str; 7] = [
    "memory",
    "compile",
    "engine",
    "process",
    "serve",
    "audit",
    "languages",
];

impl Options {
    fn wants(&self, group: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == group)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("--memory-probe") => probe_child(&args[1..]),
        _ => options(&args).and_then(run),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlock-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn probe_child(args: &[String]) -> anyhow::Result<()> {
    let [side, port] = args else {
        bail!("usage: --memory-probe airlock|reqwest PORT");
    };
    memory::probe_child(Side::parse(side)?, port.parse().context("the port")?)
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let exe = std::env::current_exe()?;
    let mut options = Options {
        quick: false,
        airlock: exe.with_file_name("airlock"),
        build_airlock: true,
        only: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--airlock" => {
                options.airlock = args.next().context("--airlock needs a path")?.into();
                options.build_airlock = false;
            }
            "--only" => {
                let group = args.next().context("--only needs a group")?;
                if !GROUPS.contains(&group.as_str()) {
                    bail!("--only {group}: groups are {}", GROUPS.join(", "));
                }
                options.only = Some(group.clone());
            }
            other => {
                bail!("unknown argument {other:?} (options: --quick, --airlock PATH, --only GROUP)")
            }
        }
    }
    Ok(options)
}

fn run(options: Options) -> anyhow::Result<()> {
    let sizes = Sizes::new(options.quick);
    print_machine();
    let server = Server::start()?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    if options.wants("memory") {
        memory_rows(&server, &sizes, &mut rows, &mut notes)?;
    }
    if options.wants("compile") {
        progress("first compile vs cached load of the built-in node");
        let (cold, warm) = compile::compile_vs_cached(sizes.compile_rounds)?;
        rows.push(Row::compare(
            "built-in node: first compile vs cached load",
            secs(median(&cold)),
            secs(median(&warm)),
            Unit::Seconds,
            Goal::None,
        ));
    }
    if options.wants("engine") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(engine_rows(&server, &sizes, &mut rows))?;
    }
    if options.wants("process") || options.wants("serve") {
        build_airlock(&options)?;
    }
    if options.wants("process") {
        process_row(&options, &server, &sizes, &mut rows, &mut notes)?;
    }
    if options.wants("serve") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(serve_rows(&options, &server, &sizes, &mut rows))?;
    }
    if options.wants("audit") {
        progress("audit append, disk vs tmpfs");
        let disk = audit::append_times(&std::env::temp_dir(), sizes.audit_appends)?;
        let tmpfs = audit::append_times(TMPFS.as_ref(), sizes.audit_appends)?;
        rows.push(Row::compare(
            "audit append p50: temp dir disk vs tmpfs",
            secs(median(&disk)),
            secs(median(&tmpfs)),
            Unit::Seconds,
            Goal::None,
        ));
    }

    if options.wants("languages") {
        language_rows(&sizes, &mut rows)?;
    }

    println!();
    print_table(&rows);
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

fn memory_rows(
    server: &Server,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    progress("resident memory with 1,000 requests in flight");
    let exe = std::env::current_exe()?;
    let mut probe = |side| -> anyhow::Result<memory::Probe> {
        let probe = memory::probe(&exe, side, server.port)?;
        let peak = server.take_peak_in_flight();
        notes.push(format!(
            "memory probe {}: RSS idle {:.1} MiB, peak {:.1} MiB; PSS idle {:.1} MiB, peak {:.1} MiB; {peak} requests held at once by the server",
            Side::name(side),
            probe.idle_kib as f64 / 1024.0,
            probe.peak_kib as f64 / 1024.0,
            probe.idle_pss_kib as f64 / 1024.0,
            probe.peak_pss_kib as f64 / 1024.0,
        ));
        Ok(probe)
    };
    let (mut airlock, mut reqwest) = (Vec::new(), Vec::new());
    for _ in 0..sizes.memory_probes {
        airlock.push(probe(Side::Airlock)?);
        reqwest.push(probe(Side::Reqwest)?);
    }
    // The worst probe of each side.
    let worst = |probes: &[memory::Probe], growth: fn(&memory::Probe) -> f64| {
        probes.iter().map(growth).fold(0.0, f64::max)
    };
    let rss = worst(&airlock, memory::Probe::growth_mib);
    let mut row = Row::compare(
        &format!("RSS above idle, {} runs in flight", memory::IN_FLIGHT),
        rss,
        worst(&reqwest, memory::Probe::growth_mib),
        Unit::MiB,
        Goal::None,
    );
    row.goal = "airlock <= 100 MiB".into();
    row.met = Some(rss <= 100.0);
    rows.push(row);
    // VmRSS counts a page once per mapping: the component's data image, mapped into every
    // instance, is counted a thousand times. PSS shows the memory really used.
    let row = Row::compare(
        "PSS above idle, same runs (info)",
        worst(&airlock, memory::Probe::pss_growth_mib),
        worst(&reqwest, memory::Probe::pss_growth_mib),
        Unit::MiB,
        Goal::None,
    );
    rows.push(row);
    Ok(())
}

/// Latency and throughput through the engine vs plain reqwest, in one tokio runtime.
async fn engine_rows(server: &Server, sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let url = server.url(FAST_PATH);
    let engine = Engine::new(server.port, None)?;
    let client = plain_client()?;
    let one = engine.op(&workflow(&url, 1)?);
    let three = engine.op(&workflow(&url, 3)?);
    let plain_one = plain_op(&client, &url, 1);
    let plain_three = plain_op(&client, &url, 3);

    progress("WEBHOOK round trip, sequential");
    let (a, b) =
        measure::latency(&one, &plain_one, sizes.latency_samples, sizes.latency_batch).await?;
    for p in [50.0, 99.0] {
        rows.push(Row::compare(
            &format!("WEBHOOK round trip p{p}"),
            secs(percentile(&a, p)),
            secs(percentile(&b, p)),
            Unit::Seconds,
            Goal::AtMost(1.3),
        ));
    }

    let runs = sizes.throughput_runs;
    let rounds = sizes.throughput_rounds;
    progress("runs/s, one-webhook workflow, concurrency 64");
    let (a, b) = measure::throughput(&one, &plain_one, CONCURRENCY, runs, rounds).await?;
    rows.push(Row::compare(
        "runs/s, 1 webhook, concurrency 64",
        a,
        b,
        Unit::PerSecond,
        Goal::AtLeast(0.5),
    ));
    let mut absolute = Row::compare(
        "runs/s, 1 webhook (absolute)",
        a,
        0.0,
        Unit::PerSecond,
        Goal::None,
    );
    absolute.baseline = "-".into();
    absolute.goal = ">= 5000/s".into();
    absolute.met = Some(a >= 5000.0);
    rows.push(absolute);

    progress("runs/s, three-webhook workflow, concurrency 64");
    let (a, b) = measure::throughput(&three, &plain_three, CONCURRENCY, runs / 3, rounds).await?;
    rows.push(Row::compare(
        "runs/s, 3 webhooks, concurrency 64",
        a,
        b,
        Unit::PerSecond,
        Goal::AtLeast(0.5),
    ));

    // Not goals: show how much of the engine's cost is the fsynced audit.
    progress("the same with the state dir (audit) on tmpfs");
    let on_tmpfs = Engine::new(server.port, Some(TMPFS.as_ref()))?;
    let one_tmpfs = on_tmpfs.op(&workflow(&url, 1)?);
    let (a, b) = measure::latency(
        &one_tmpfs,
        &plain_one,
        sizes.latency_samples,
        sizes.latency_batch,
    )
    .await?;
    rows.push(Row::compare(
        "WEBHOOK round trip p50, state on tmpfs (info)",
        secs(percentile(&a, 50.0)),
        secs(percentile(&b, 50.0)),
        Unit::Seconds,
        Goal::None,
    ));
    let (a, b) = measure::throughput(&one_tmpfs, &plain_one, CONCURRENCY, runs, rounds).await?;
    rows.push(Row::compare(
        "runs/s, 1 webhook, state on tmpfs (info)",
        a,
        b,
        Unit::PerSecond,
        Goal::None,
    ));
    Ok(())
}

/// The binary next to this one, built from this checkout: never measure a stale one.
fn build_airlock(options: &Options) -> anyhow::Result<()> {
    if !options.build_airlock {
        return Ok(());
    }
    progress("building target/release/airlock (cargo build --release -p airlock)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "airlock"])
        .current_dir(root)
        .status()
        .context("running cargo build for the airlock binary")?;
    anyhow::ensure!(status.success(), "cargo build --release -p airlock failed");
    Ok(())
}

/// Runs through `airlock serve`'s API (`POST …/runs?wait=true`) vs plain reqwest.
async fn serve_rows(
    options: &Options,
    server: &Server,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let url = server.url(FAST_PATH);
    progress(
        "runs/s through airlock serve (POST /v1/workflows/{id}/runs?wait=true), concurrency 64",
    );
    let serve = serve::Serve::start(&options.airlock, &url, server.port).await?;
    let plain_one = plain_op(&plain_client()?, &url, 1);
    let (a, b) = measure::throughput(
        &serve.op()?,
        &plain_one,
        CONCURRENCY,
        sizes.throughput_runs,
        sizes.throughput_rounds,
    )
    .await?;
    rows.push(Row::compare(
        "serve runs/s (wait=true), 1 webhook, concurrency 64",
        a,
        b,
        Unit::PerSecond,
        Goal::None,
    ));
    let mut absolute = Row::compare(
        "serve runs/s, 1 webhook (absolute)",
        a,
        0.0,
        Unit::PerSecond,
        Goal::None,
    );
    absolute.baseline = "-".into();
    absolute.goal = ">= 2000/s".into();
    absolute.met = Some(a >= 2000.0);
    rows.push(absolute);
    Ok(())
}

fn process_row(
    options: &Options,
    server: &Server,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    progress("`airlock run` process vs curl");
    if !options.airlock.is_file() {
        notes.push(format!(
            "`airlock run` vs curl skipped: {} not found; build it first with `cargo build --release -p airlock`",
            options.airlock.display()
        ));
        return Ok(());
    }
    let (a, b) = process::wall_times(
        &options.airlock,
        &server.url(FAST_PATH),
        server.port,
        sizes.process_runs,
    )?;
    rows.push(Row::compare(
        "`airlock run` wall time (median) vs curl",
        secs(median(&a)),
        secs(median(&b)),
        Unit::Seconds,
        Goal::AtMost(2.0),
    ));
    Ok(())
}

/// Per language: a node run's sandbox time with a fresh instance, and first compile vs cached
/// load of its component.
fn language_rows(sizes: &Sizes, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    progress("building a node in each language (airlock node build)");
    let projects = tempfile::tempdir()?;
    let dirs = Language::ALL
        .into_iter()
        .map(|language| Ok((language, languages::build_echo(projects.path(), language)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for (language, dir) in dirs {
        progress(&format!(
            "{language} node: fresh-instance runs, compile vs cached load"
        ));
        let cost = runtime.block_on(languages::measure(
            &dir,
            sizes.latency_samples,
            sizes.latency_batch,
            sizes.compile_rounds,
        ))?;
        let sandbox = median(&cost.with_node).saturating_sub(median(&cost.without_node));
        let goal = languages::goal(language);
        let mut row = Row::compare(
            &format!("{language} node run p50, fresh instance (sandbox time)"),
            secs(sandbox),
            0.0,
            Unit::Seconds,
            Goal::None,
        );
        row.baseline = "-".into();
        row.goal = format!("<= {}", Unit::Seconds.show(secs(goal)));
        row.met = Some(sandbox <= goal);
        rows.push(row);
        rows.push(Row::compare(
            &format!(
                "{language} node ({:.1} MiB): first compile vs cached load",
                cost.size as f64 / (1024.0 * 1024.0)
            ),
            secs(median(&cost.first_compile)),
            secs(median(&cost.cached_load)),
            Unit::Seconds,
            Goal::None,
        ));
    }
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn progress(what: &str) {
    eprintln!("measuring: {what}...");
}

fn print_machine() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = field(&meminfo, "MemTotal").unwrap_or("unknown");
    println!("machine: {cpus} CPUs, {model}, memory {memory}");
}

/// The value of the first `name: value` line.
fn field<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then_some(value.trim())
    })
}
