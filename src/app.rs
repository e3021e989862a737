//! The commands as the binary runs them: wiring configuration to the library and printing
//! results. Returns errors; `main` maps them to exit codes.

use std::time::Instant;

use crate::cli::{Command, Global, InitArgs, Invocation, RunArgs, SinkChoice};
use crate::client::Client;
use crate::consumer::{self, Consumer, ConsumerConfig, RunReport, StopFlag, StopReason};
use crate::error::{Error, Result};
use crate::init::{InitConfig, init};
use crate::logging::{self, SUMMARY_TARGET};
use crate::metrics::RunMetrics;
use crate::offsets::OffsetStore;
use crate::sink::{ExecSink, NullSink, Sink, StdoutSink};
use crate::{inspect, reset};

/// Facts about the process that the library must not look up itself.
#[derive(Debug, Clone)]
pub struct Context {
    pub host: String,
    pub run_id: String,
}

/// Runs a parsed command.
pub fn execute(invocation: Invocation, stop: &StopFlag, context: &Context) -> Result<()> {
    let Invocation { global, command } = invocation;
    match command {
        Command::Help(text) => {
            print!("{text}");
            Ok(())
        }
        Command::Version => {
            println!("seqtail {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Init(args) => run_init(&global, &args),
        Command::Run(args) => run_job(&global, &args, stop, context),
        Command::Produce(config) => run_produce(&global, &config, stop),
        Command::GroupsList { json } => {
            let client = Client::new(&global.client)?;
            let rows = inspect::list(&client, &global.offsets_index)?;
            if json {
                println!("{}", to_json(&rows)?);
            } else {
                print!("{}", inspect::list_table(&rows));
            }
            Ok(())
        }
        Command::GroupsDescribe { group, json } => {
            let client = Client::new(&global.client)?;
            let rows = inspect::describe(&client, &global.offsets_index, Some(&group))?;
            if rows.is_empty() {
                return Err(Error::Config(format!(
                    "group {group} has no stored offsets in {}",
                    global.offsets_index
                )));
            }
            if json {
                println!("{}", to_json(&rows)?);
            } else {
                print!("{}", inspect::describe_table(&rows));
            }
            Ok(())
        }
        Command::GroupsHistory { group, limit, json } => {
            let client = Client::new(&global.client)?;
            let store = OffsetStore::new(client, global.offsets_index.clone());
            let records = store.history(&group, limit)?;
            if json {
                println!("{}", to_json(&records)?);
            } else {
                print!("{}", inspect::history_table(&records));
            }
            Ok(())
        }
        Command::OffsetsReset(args) => {
            let client = Client::new(&global.client)?;
            let plan = reset::plan_reset(&client, &global.offsets_index, &global.index, &args)?;
            if args.execute {
                reset::apply_reset(
                    &client,
                    &global.offsets_index,
                    &plan,
                    args.force,
                    &context.run_id,
                    &context.host,
                )?;
            }
            if args.json {
                println!("{}", to_json(&plan)?);
            } else {
                print!("{}", plan.render(args.execute));
            }
            if !args.execute && !plan.leased().is_empty() && !args.force {
                log::warn!(
                    "a live run holds some of these shards: --execute will refuse without --force"
                );
            }
            Ok(())
        }
        Command::OffsetsDelete {
            group,
            execute,
            force,
        } => {
            let client = Client::new(&global.client)?;
            let docs = reset::plan_delete(&client, &global.offsets_index, &group)?;
            if execute {
                reset::apply_delete(
                    &client,
                    &global.offsets_index,
                    &group,
                    &docs,
                    force,
                    &context.run_id,
                    &context.host,
                )?;
            }
            print!("{}", reset::render_delete(&group, &docs, execute));
            Ok(())
        }
        Command::Health(args) => {
            let client = Client::new(&global.client)?;
            match inspect::health(
                &client,
                &global.offsets_index,
                &args.group,
                args.max_lag,
                args.max_age,
            )? {
                Ok(reason) => {
                    println!("OK {reason}");
                    Ok(())
                }
                Err(reason) => {
                    println!("UNHEALTHY {reason}");
                    Err(Error::Unhealthy(reason))
                }
            }
        }
    }
}

fn run_init(global: &Global, args: &InitArgs) -> Result<()> {
    let client = Client::new(&global.client)?;
    let report = init(
        &client,
        &InitConfig {
            index: global.index.clone(),
            offsets_index: global.offsets_index.clone(),
            shards: args.shards,
            replicas: args.replicas,
        },
    )?;
    for name in &report.created {
        println!("created {name}");
    }
    for name in &report.existing {
        println!("exists  {name}");
    }
    for drift in &report.drift {
        println!("drift   {drift}");
        log::warn!("drift: {drift} (init does not change existing indices)");
    }
    Ok(())
}

fn run_job(global: &Global, args: &RunArgs, stop: &StopFlag, context: &Context) -> Result<()> {
    let started = Instant::now();
    logging::set_label("group", &args.group);
    logging::set_label("run_id", &context.run_id);
    let client = Client::new(&global.client)?.with_stop(stop.clone());
    let mut sink: Box<dyn Sink> = match &args.sink {
        SinkChoice::Stdout => Box::new(StdoutSink::new()),
        SinkChoice::Null => Box::new(NullSink::default()),
        SinkChoice::Exec { command, timeout } => Box::new(ExecSink::new(
            command.clone(),
            *timeout,
            context.run_id.clone(),
        )),
    };
    let config = ConsumerConfig {
        group: args.group.clone(),
        index: global.index.clone(),
        offsets_index: global.offsets_index.clone(),
        batch_size: args.batch_size,
        start_from: args.start_from,
        slice: args.slice,
        run_id: context.run_id.clone(),
        host: context.host.clone(),
        lease_ttl: args.lease_ttl,
        history: args.history,
        mark_processed: args.mark_processed,
    };
    log::info!(
        "run {} of group {} on index {} via {}",
        context.run_id,
        args.group,
        global.index,
        client.current_url()
    );
    let report = match Consumer::open(client, config) {
        Ok(mut consumer) => {
            consumer::run(&mut consumer, sink.as_mut(), &args.limits, stop, started)
        }
        // Nothing was read: the same summary, with no shards.
        Err(e) => RunReport {
            group: args.group.clone(),
            index: global.index.clone(),
            run_id: context.run_id.clone(),
            events: 0,
            batches: 0,
            duration: started.elapsed(),
            reason: StopReason::Failed,
            shards: Vec::new(),
            skipped: Vec::new(),
            error: Some(e),
        },
    };
    log::info!(target: SUMMARY_TARGET, "{}", report.summary_line());
    let RunReport {
        events,
        shards,
        error,
        ..
    } = report;
    if args.pushgateway.is_some() || args.metrics_file.is_some() {
        let metrics = RunMetrics {
            group: args.group.clone(),
            index: global.index.clone(),
            slice: args.slice.map(|s| format!("{}/{}", s.index, s.count)),
            duration: started.elapsed(),
            events,
            exit_code: error.as_ref().map(Error::exit_code).unwrap_or(0),
            finished_at: crate::time::now_millis() as f64 / 1000.0,
            shards,
        };
        // Metrics describe the run; failing to export them does not change its outcome.
        if let Some(path) = &args.metrics_file {
            if let Err(e) = metrics.write_textfile(path) {
                log::warn!("metrics not written: {e}");
            }
        }
        if let Some(url) = &args.pushgateway {
            if let Err(e) = metrics.push(url, global.client.timeout) {
                log::warn!("metrics not pushed: {e}");
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn run_produce(
    global: &Global,
    config: &crate::produce::ProduceConfig,
    stop: &StopFlag,
) -> Result<()> {
    let client = Client::new(&global.client)?;
    let result = crate::produce::produce(&client, config, stop);
    match &result {
        Ok(r) => log::info!(
            target: SUMMARY_TARGET,
            "produce index={} written={} failed={} skipped_lines={} duration={} rate={:.0}/s exit=0",
            config.index,
            r.written,
            r.failed,
            r.skipped_lines,
            crate::time::human(r.duration),
            r.rate()
        ),
        Err(e) => log::info!(
            target: SUMMARY_TARGET,
            "produce index={} failed exit={} error=\"{e}\"",
            config.index,
            e.exit_code()
        ),
    }
    result.map(|_| ())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))
}

/// Wraps an error for printing on stderr as the last line.
pub fn describe_failure(e: &Error) -> String {
    format!("seqtail: {e}")
}
