//! Command line and `SEQTAIL_*` environment, parsed into a raw map and then validated into
//! typed configuration. The caller passes argv and the environment in; nothing here reads them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use crate::client::ClientConfig;
use crate::consumer::{RunLimits, Slice, StartFrom};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::time::parse_duration;

/// One flag: its long name, whether it takes a value, and its help line.
struct Flag {
    name: &'static str,
    value: Option<&'static str>,
    help: &'static str,
}

const fn flag(name: &'static str, value: Option<&'static str>, help: &'static str) -> Flag {
    Flag { name, value, help }
}

const GLOBAL: &[Flag] = &[
    flag(
        "url",
        Some("URLS"),
        "OpenSearch base URLs, comma-separated, tried in order [http://127.0.0.1:9200]",
    ),
    flag(
        "index",
        Some("NAME"),
        "events index (or alias of one index) [events]",
    ),
    flag(
        "offsets-index",
        Some("NAME"),
        "where group offsets are stored [consumer-offsets]",
    ),
    flag("username", Some("USER"), "basic-auth user"),
    flag(
        "password",
        Some("PASS"),
        "basic-auth password (prefer --password-file)",
    ),
    flag("password-file", Some("FILE"), "read the password from FILE"),
    flag(
        "ca-cert",
        Some("FILE"),
        "PEM bundle of CA certificates to trust instead of the defaults",
    ),
    flag(
        "client-cert",
        Some("FILE"),
        "PEM client certificate chain for mutual TLS",
    ),
    flag(
        "client-key",
        Some("FILE"),
        "PEM private key of --client-cert",
    ),
    flag(
        "insecure",
        None,
        "do not verify the server certificate (never the default)",
    ),
    flag(
        "timeout",
        Some("DURATION"),
        "connect and response timeout of one request [30s]",
    ),
    flag(
        "retry-timeout",
        Some("DURATION"),
        "how long to retry an unavailable server [60s]",
    ),
    flag(
        "log-format",
        Some("text|json"),
        "log format on stderr [text]",
    ),
];

const INIT: &[Flag] = &[
    flag(
        "shards",
        Some("N"),
        "primary shards of the events index [5]",
    ),
    flag("replicas", Some("N"), "replicas of the events index [1]"),
];

const RUN: &[Flag] = &[
    flag(
        "group",
        Some("NAME"),
        "consumer group ([a-z0-9][a-z0-9._-]{0,99}); required",
    ),
    flag("batch-size", Some("N"), "events per batch, 1..10000 [500]"),
    flag(
        "max-batches",
        Some("N"),
        "stop after N batches; 0 = no limit [100]",
    ),
    flag(
        "max-duration",
        Some("DURATION"),
        "stop starting batches before this much time has passed",
    ),
    flag(
        "until-caught-up",
        None,
        "take new snapshots until one shows nothing new",
    ),
    flag(
        "start-from",
        Some("earliest|latest"),
        "where a group without offsets starts [earliest]",
    ),
    flag(
        "sink",
        Some("stdout|null"),
        "where batches go when --exec is not given [stdout]",
    ),
    flag(
        "exec",
        Some("CMD"),
        "run `sh -c CMD` per batch, batch on stdin; exit 0 accepts it",
    ),
    flag(
        "exec-timeout",
        Some("DURATION"),
        "kill --exec and fail the batch after this long [4m]",
    ),
    flag("slice", Some("I/N"), "read only shards with shard % N == I"),
    flag(
        "slices",
        Some("N"),
        "with JOB_COMPLETION_INDEX (Indexed Job): --slice JOB_COMPLETION_INDEX/N",
    ),
    flag(
        "lease-ttl",
        Some("DURATION"),
        "a crashed run's shards are free after this [5m]",
    ),
    flag(
        "no-history",
        None,
        "do not append commit records to <offsets-index>-history",
    ),
    flag(
        "mark-processed",
        None,
        "set processed/processed_by on delivered events (re-indexes them)",
    ),
    flag(
        "pushgateway",
        Some("URL"),
        "push the run's metrics to this Pushgateway (POST)",
    ),
    flag(
        "metrics-file",
        Some("PATH"),
        "write the run's metrics as a node_exporter textfile",
    ),
];

const GROUPS: &[Flag] = &[
    flag("json", None, "machine-readable output"),
    flag("limit", Some("N"), "history records to show [20]"),
];

const OFFSETS: &[Flag] = &[
    flag(
        "to",
        Some("WHERE"),
        "earliest | latest | seq:N (next event N) | time:RFC3339",
    ),
    flag("shard", Some("S"), "reset only this shard"),
    flag(
        "time-field",
        Some("FIELD"),
        "event time field for --to time: [timestamp]",
    ),
    flag("execute", None, "apply the plan (the default is a dry run)"),
    flag("force", None, "apply even while a live lease is held"),
    flag("json", None, "machine-readable plan"),
];

const HEALTH: &[Flag] = &[
    flag("group", Some("NAME"), "the group to check; required"),
    flag(
        "max-lag",
        Some("N"),
        "unhealthy when the total lag exceeds N events",
    ),
    flag(
        "max-age",
        Some("DURATION"),
        "unhealthy when the last commit is older than this",
    ),
];

const PRODUCE: &[Flag] = &[
    flag("count", Some("N"), "generate N events"),
    flag(
        "duration",
        Some("DURATION"),
        "generate events for this long",
    ),
    flag(
        "rate",
        Some("N"),
        "events per second, steady (default: as fast as possible)",
    ),
    flag(
        "from",
        Some("FILE|-"),
        "ingest NDJSON, one document per line, instead of generating",
    ),
    flag("bulk-size", Some("N"), "documents per _bulk request [500]"),
    flag(
        "payload-bytes",
        Some("N"),
        "size of the generated payload field [512]",
    ),
    flag(
        "keys",
        Some("N"),
        "distinct values of the generated `key` field [100]",
    ),
    flag(
        "routing-field",
        Some("FIELD"),
        "route each event by this field (one key, one shard)",
    ),
    flag(
        "id-prefix",
        Some("PREFIX"),
        "ids are PREFIX + sequence (event number or line number)",
    ),
    flag("id-field", Some("FIELD"), "ids are this field's value"),
    flag(
        "on-bad-line",
        Some("fail|skip"),
        "a line that is not a JSON object [fail]",
    ),
];

/// The log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Options shared by every command.
#[derive(Debug, Clone)]
pub struct Global {
    pub client: ClientConfig,
    pub index: String,
    pub offsets_index: String,
    pub log_format: LogFormat,
    /// 0 = info; positive = more (-v, -vv); negative = quieter (-q).
    pub verbosity: i32,
}

/// Where `run` delivers batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkChoice {
    Stdout,
    Null,
    Exec { command: String, timeout: Duration },
}

/// `seqtail run`.
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub group: String,
    pub batch_size: usize,
    pub limits: RunLimits,
    pub start_from: StartFrom,
    pub sink: SinkChoice,
    pub slice: Option<Slice>,
    pub lease_ttl: Duration,
    pub history: bool,
    pub mark_processed: bool,
    pub pushgateway: Option<String>,
    pub metrics_file: Option<PathBuf>,
}

/// `seqtail init`.
#[derive(Debug, Clone)]
pub struct InitArgs {
    pub shards: u32,
    pub replicas: u32,
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Command {
    Help(String),
    Version,
    Init(InitArgs),
    Run(RunArgs),
    Produce(crate::produce::ProduceConfig),
    GroupsList {
        json: bool,
    },
    GroupsDescribe {
        group: String,
        json: bool,
    },
    GroupsHistory {
        group: String,
        limit: usize,
        json: bool,
    },
    OffsetsReset(ResetArgs),
    OffsetsDelete {
        group: String,
        execute: bool,
        force: bool,
    },
    Health(HealthArgs),
}

/// Where `offsets reset` moves a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    /// The next event delivered is the first with `_seq_no >= N`.
    SeqNo(i64),
    /// Per shard, the first event (in `_seq_no` order) whose time field is `>=` this (epoch ms).
    Time(i64),
}

/// `seqtail offsets reset`.
#[derive(Debug, Clone)]
pub struct ResetArgs {
    pub group: String,
    pub to: ResetTo,
    pub shard: Option<u32>,
    pub time_field: String,
    pub execute: bool,
    pub force: bool,
    pub json: bool,
}

/// `seqtail health`.
#[derive(Debug, Clone)]
pub struct HealthArgs {
    pub group: String,
    pub max_lag: Option<i64>,
    pub max_age: Option<Duration>,
}

/// A parsed and validated command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub global: Global,
    pub command: Command,
}

/// Command names and the flags each accepts besides the global ones.
fn command_flags(command: &str) -> Option<&'static [Flag]> {
    match command {
        "init" => Some(INIT),
        "run" => Some(RUN),
        "produce" => Some(PRODUCE),
        "groups" => Some(GROUPS),
        "offsets" => Some(OFFSETS),
        "health" => Some(HEALTH),
        _ => None,
    }
}

const COMMANDS: &[(&str, &str)] = &[
    (
        "init",
        "create the events and offsets indices (idempotent; reports drift)",
    ),
    (
        "run",
        "the batch job: read a group's new events, deliver them, commit, exit",
    ),
    (
        "produce",
        "write events: generated (--count/--duration/--rate) or NDJSON (--from)",
    ),
    (
        "groups",
        "groups list | groups describe GROUP | groups history GROUP: inspect groups",
    ),
    (
        "offsets",
        "offsets reset GROUP --to … | offsets delete GROUP: dry run unless --execute",
    ),
    (
        "health",
        "exit 0 when a group's lag and last commit are within limits, 1 otherwise",
    ),
];

/// The environment variable of a flag: `--retry-timeout` → `SEQTAIL_RETRY_TIMEOUT`.
pub fn env_name(flag: &str) -> String {
    format!("SEQTAIL_{}", flag.to_uppercase().replace('-', "_"))
}

/// Parses `args` (without the program name) with `env` as the environment.
pub fn parse(args: &[String], env: &HashMap<String, String>) -> Result<Invocation> {
    let mut command: Option<String> = None;
    let mut positionals: Vec<String> = Vec::new();
    let mut raw: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut verbosity = 0i32;
    let mut help = false;
    let mut version = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "-h" | "--help" => {
                help = true;
                continue;
            }
            "-V" | "--version" => {
                version = true;
                continue;
            }
            "-q" | "--quiet" => {
                verbosity -= 1;
                continue;
            }
            "--verbose" => {
                verbosity += 1;
                continue;
            }
            "--" => {
                positionals.extend(args[i..].iter().cloned());
                break;
            }
            _ => {}
        }
        if arg.len() > 1 && arg.starts_with('-') && !arg.starts_with("--") {
            if arg[1..].chars().all(|c| c == 'v') {
                verbosity += (arg.len() - 1) as i32;
                continue;
            }
            return Err(Error::Usage(format!("unknown flag `{arg}`")));
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let scope = command.as_deref().and_then(command_flags).unwrap_or(&[]);
            let spec = GLOBAL
                .iter()
                .chain(scope.iter())
                .find(|f| f.name == name)
                .ok_or_else(|| match &command {
                    Some(c) => Error::Usage(format!("unknown flag `--{name}` for `seqtail {c}`")),
                    None => Error::Usage(format!(
                        "unknown flag `--{name}` (command flags go after the command name)"
                    )),
                })?;
            let value = match (spec.value, inline) {
                (None, None) => "true".to_string(),
                (None, Some(_)) => {
                    return Err(Error::Usage(format!("`--{name}` takes no value")));
                }
                (Some(_), Some(v)) => v,
                (Some(meta), None) => {
                    let v = args.get(i).ok_or_else(|| {
                        Error::Usage(format!("`--{name}` needs a value ({meta})"))
                    })?;
                    i += 1;
                    v.clone()
                }
            };
            raw.insert(spec.name, value);
            continue;
        }
        if command.is_none() {
            if command_flags(arg).is_none() && arg != "help" {
                return Err(Error::Usage(format!(
                    "unknown command `{arg}`; commands: {}",
                    COMMANDS.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
                )));
            }
            command = Some(arg.clone());
        } else {
            positionals.push(arg.clone());
        }
    }

    if version {
        return Ok(Invocation {
            global: global(&raw, env, verbosity, false)?,
            command: Command::Version,
        });
    }
    if help || command.is_none() || command.as_deref() == Some("help") {
        let topic = if command.as_deref() == Some("help") {
            positionals.first().cloned()
        } else {
            command.clone()
        };
        return Ok(Invocation {
            global: global(&raw, env, verbosity, false)?,
            command: Command::Help(help_text(topic.as_deref())),
        });
    }
    let command = command.unwrap_or_default();
    let scope = command_flags(&command).unwrap_or(&[]);
    // Flags win over the environment.
    for spec in GLOBAL.iter().chain(scope.iter()) {
        if !raw.contains_key(spec.name) {
            if let Some(v) = env.get(&env_name(spec.name)) {
                raw.insert(spec.name, v.clone());
            }
        }
    }
    let takes_positionals = matches!(command.as_str(), "groups" | "offsets");
    if let Some(extra) = positionals.first().filter(|_| !takes_positionals) {
        return Err(Error::Usage(format!(
            "unexpected argument `{extra}` for `seqtail {command}`"
        )));
    }
    let global = global(&raw, env, verbosity, true)?;
    let command = match command.as_str() {
        "init" => Command::Init(InitArgs {
            shards: number(&raw, "shards", 5u32, 1, 1024)?,
            replicas: number(&raw, "replicas", 1u32, 0, 16)?,
        }),
        "run" => Command::Run(run_args(&raw, env)?),
        "groups" => groups_args(&raw, &positionals)?,
        "offsets" => offsets_args(&raw, &positionals)?,
        "health" => {
            let group = raw
                .get("group")
                .cloned()
                .ok_or_else(|| Error::Usage("`seqtail health` needs --group NAME".into()))?;
            validate_group(&group)?;
            if !raw.contains_key("max-lag") && !raw.contains_key("max-age") {
                return Err(Error::Usage(
                    "`seqtail health` needs --max-lag N, --max-age DURATION or both".into(),
                ));
            }
            Command::Health(HealthArgs {
                group,
                max_lag: match raw.get("max-lag") {
                    Some(_) => Some(number(&raw, "max-lag", 0i64, 0, i64::MAX)?),
                    None => None,
                },
                max_age: match raw.get("max-age") {
                    Some(_) => Some(duration(&raw, "max-age", Duration::ZERO)?),
                    None => None,
                },
            })
        }
        "produce" => Command::Produce(produce_args(&raw, &global)?),
        other => return Err(Error::Internal(format!("command {other} has no parser"))),
    };
    Ok(Invocation { global, command })
}

fn global(
    raw: &BTreeMap<&'static str, String>,
    env: &HashMap<String, String>,
    verbosity: i32,
    strict: bool,
) -> Result<Global> {
    let get = |name: &str| {
        raw.get(name)
            .cloned()
            .or_else(|| env.get(&env_name(name)).cloned())
    };
    let urls: Vec<String> = get("url")
        .unwrap_or_else(|| "http://127.0.0.1:9200".into())
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    let index = get("index").unwrap_or_else(|| "events".into());
    let offsets_index = get("offsets-index").unwrap_or_else(|| "consumer-offsets".into());
    let log_format = match get("log-format").as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) if strict => {
            return Err(Error::Config(format!(
                "--log-format `{other}`: use text or json"
            )));
        }
        Some(_) => LogFormat::Text,
    };
    if !strict {
        return Ok(Global {
            client: ClientConfig::default(),
            index,
            offsets_index,
            log_format,
            verbosity,
        });
    }
    validate_index_name(&index, "--index")?;
    validate_index_name(&offsets_index, "--offsets-index")?;
    if urls.is_empty() {
        return Err(Error::Config("--url is empty".into()));
    }
    let password = secret(raw, "password")?;
    let client = ClientConfig {
        urls,
        username: get("username").filter(|u| !u.is_empty()),
        password,
        ca_cert: get("ca-cert").map(PathBuf::from),
        client_cert: get("client-cert").map(PathBuf::from),
        client_key: get("client-key").map(PathBuf::from),
        insecure: boolean(raw, "insecure")?,
        timeout: duration(raw, "timeout", Duration::from_secs(30))?,
        retry_timeout: duration(raw, "retry-timeout", Duration::from_secs(60))?,
    };
    if client.timeout.is_zero() {
        return Err(Error::Config("--timeout must be above 0".into()));
    }
    Ok(Global {
        client,
        index,
        offsets_index,
        log_format,
        verbosity,
    })
}

/// A secret from `--NAME` / `SEQTAIL_NAME` or `--NAME-file` / `SEQTAIL_NAME_FILE`, not both.
/// `raw` already holds the environment's values for flags not given.
fn secret(raw: &BTreeMap<&'static str, String>, name: &'static str) -> Result<Option<Secret>> {
    let file_flag = format!("{name}-file");
    let value = raw.get(name).cloned();
    let file = raw.get(file_flag.as_str()).cloned();
    match (value, file) {
        (Some(_), Some(_)) => Err(Error::Config(format!(
            "both a {name} value ({} or --{name}) and a {name} file ({} or --{file_flag}) are \
             set; keep one",
            env_name(name),
            env_name(&file_flag)
        ))),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::Config(format!(
                    "cannot read the {name} file {path}: {e}; check the path, its permissions \
                     (a non-root pod needs fsGroup and mode 0440) and the mount"
                ))
            })?;
            let text = text.trim_end_matches(['\n', '\r']).to_string();
            if text.is_empty() {
                return Err(Error::Config(format!("the {name} file {path} is empty")));
            }
            Ok(Some(Secret::new(text)))
        }
        (None, None) => Ok(None),
    }
}

fn subcommand<'a>(
    positionals: &'a [String],
    command: &str,
    subs: &[&str],
) -> Result<(&'a str, Option<&'a String>)> {
    let sub = positionals.first().ok_or_else(|| {
        Error::Usage(format!(
            "`seqtail {command}` needs a subcommand: {}",
            subs.join(", ")
        ))
    })?;
    if !subs.contains(&sub.as_str()) {
        return Err(Error::Usage(format!(
            "unknown subcommand `{command} {sub}`; use one of: {}",
            subs.join(", ")
        )));
    }
    if let Some(extra) = positionals.get(2) {
        return Err(Error::Usage(format!("unexpected argument `{extra}`")));
    }
    Ok((sub.as_str(), positionals.get(1)))
}

fn required_group(group: Option<&String>, usage: &str) -> Result<String> {
    let group = group.ok_or_else(|| Error::Usage(format!("usage: {usage}")))?;
    validate_group(group)?;
    Ok(group.clone())
}

fn groups_args(raw: &BTreeMap<&'static str, String>, positionals: &[String]) -> Result<Command> {
    let (sub, group) = subcommand(positionals, "groups", &["list", "describe", "history"])?;
    let json = boolean(raw, "json")?;
    Ok(match sub {
        "list" => Command::GroupsList { json },
        "describe" => Command::GroupsDescribe {
            group: required_group(group, "seqtail groups describe GROUP [--json]")?,
            json,
        },
        _ => Command::GroupsHistory {
            group: required_group(group, "seqtail groups history GROUP [--limit N] [--json]")?,
            limit: number(raw, "limit", 20usize, 1, 10_000)?,
            json,
        },
    })
}

fn offsets_args(raw: &BTreeMap<&'static str, String>, positionals: &[String]) -> Result<Command> {
    let (sub, group) = subcommand(positionals, "offsets", &["reset", "delete"])?;
    let execute = boolean(raw, "execute")?;
    let force = boolean(raw, "force")?;
    if sub == "delete" {
        return Ok(Command::OffsetsDelete {
            group: required_group(group, "seqtail offsets delete GROUP [--execute]")?,
            execute,
            force,
        });
    }
    let group = required_group(
        group,
        "seqtail offsets reset GROUP --to earliest|latest|seq:N|time:RFC3339 [--execute]",
    )?;
    let text = raw.get("to").ok_or_else(|| {
        Error::Usage("`offsets reset` needs --to earliest|latest|seq:N|time:RFC3339".into())
    })?;
    let to = match text.as_str() {
        "earliest" => ResetTo::Earliest,
        "latest" => ResetTo::Latest,
        t if t.starts_with("seq:") => {
            let n: i64 = t[4..]
                .parse()
                .map_err(|_| Error::Config(format!("--to {t}: seq: takes a whole number >= 0")))?;
            if n < 0 {
                return Err(Error::Config(format!(
                    "--to {t}: seq: takes a whole number >= 0"
                )));
            }
            ResetTo::SeqNo(n)
        }
        t if t.starts_with("time:") => ResetTo::Time(
            crate::time::parse_rfc3339_millis(&t[5..])
                .map_err(|e| Error::Config(format!("--to {t}: {e}")))?,
        ),
        other => {
            return Err(Error::Config(format!(
                "--to `{other}`: use earliest, latest, seq:N or time:RFC3339"
            )));
        }
    };
    Ok(Command::OffsetsReset(ResetArgs {
        group,
        to,
        shard: match raw.get("shard") {
            Some(_) => Some(number(raw, "shard", 0u32, 0, 1023)?),
            None => None,
        },
        time_field: raw
            .get("time-field")
            .cloned()
            .unwrap_or_else(|| "timestamp".into()),
        execute,
        force,
        json: boolean(raw, "json")?,
    }))
}

fn run_args(
    raw: &BTreeMap<&'static str, String>,
    env: &HashMap<String, String>,
) -> Result<RunArgs> {
    let group = raw.get("group").cloned().ok_or_else(|| {
        Error::Usage("`seqtail run` needs --group NAME (or SEQTAIL_GROUP)".into())
    })?;
    validate_group(&group)?;
    let max_batches: u64 = number(raw, "max-batches", 100u64, 0, u64::MAX)?;
    let max_duration = match raw.get("max-duration") {
        Some(_) => Some(duration(raw, "max-duration", Duration::ZERO)?),
        None => None,
    };
    let start_from = match raw.get("start-from").map(String::as_str) {
        None | Some("earliest") => StartFrom::Earliest,
        Some("latest") => StartFrom::Latest,
        Some(other) => {
            return Err(Error::Config(format!(
                "--start-from `{other}`: use earliest or latest"
            )));
        }
    };
    let sink = match (raw.get("exec"), raw.get("sink").map(String::as_str)) {
        (Some(cmd), None) | (Some(cmd), Some("exec")) => {
            if cmd.trim().is_empty() {
                return Err(Error::Config("--exec is empty".into()));
            }
            SinkChoice::Exec {
                command: cmd.clone(),
                timeout: duration(raw, "exec-timeout", Duration::from_secs(240))?,
            }
        }
        (Some(_), Some(other)) => {
            return Err(Error::Config(format!(
                "--exec and --sink {other} are both set; --exec is a sink of its own"
            )));
        }
        (None, None) | (None, Some("stdout")) => SinkChoice::Stdout,
        (None, Some("null")) => SinkChoice::Null,
        (None, Some(other)) => {
            return Err(Error::Config(format!(
                "--sink `{other}`: use stdout or null, or --exec CMD"
            )));
        }
    };
    let mut slice = raw.get("slice").map(|s| parse_slice(s)).transpose()?;
    if let Some(n) = raw.get("slices") {
        let count: u32 = n.trim().parse().ok().filter(|c| *c > 0).ok_or_else(|| {
            Error::Config(format!("--slices `{n}` must be a whole number above 0"))
        })?;
        if slice.is_none() {
            let index = env.get("JOB_COMPLETION_INDEX").ok_or_else(|| {
                Error::Config(
                    "--slices needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job); \
                     outside one, use --slice I/N"
                        .into(),
                )
            })?;
            slice = Some(parse_slice(&format!("{index}/{count}")).map_err(|_| {
                Error::Config(format!(
                    "JOB_COMPLETION_INDEX {index} does not fit --slices {count}; set the Job's \
                     completions to {count}"
                ))
            })?);
        }
    }
    // Leases are renewed between batches, so one batch must fit in a lease; the defaults
    // leave a margin of a minute.
    let lease_ttl = match raw.get("lease-ttl") {
        Some(_) => duration(raw, "lease-ttl", Duration::ZERO)?,
        None => {
            let mut ttl = Duration::from_secs(300);
            if let Some(d) = max_duration {
                ttl = ttl.max(d + Duration::from_secs(60));
            }
            if let SinkChoice::Exec { timeout, .. } = &sink {
                ttl = ttl.max(*timeout + Duration::from_secs(60));
            }
            ttl
        }
    };
    if let Some(d) = max_duration {
        if lease_ttl <= d {
            return Err(Error::Config(format!(
                "--lease-ttl {} must be longer than --max-duration {} (with a margin), or a \
                 slow run could lose its shards to the next one mid-batch",
                crate::time::human(lease_ttl),
                crate::time::human(d)
            )));
        }
    }
    if let SinkChoice::Exec { timeout, .. } = &sink {
        if lease_ttl <= *timeout {
            return Err(Error::Config(format!(
                "--lease-ttl {} must be longer than --exec-timeout {}, or a slow batch could \
                 lose its shard to another run",
                crate::time::human(lease_ttl),
                crate::time::human(*timeout)
            )));
        }
    }
    Ok(RunArgs {
        group,
        batch_size: number(raw, "batch-size", 500usize, 1, 10_000)?,
        limits: RunLimits {
            max_batches: if max_batches == 0 {
                None
            } else {
                Some(max_batches)
            },
            max_duration,
            until_caught_up: boolean(raw, "until-caught-up")?,
        },
        start_from,
        sink,
        slice,
        lease_ttl,
        history: !boolean(raw, "no-history")?,
        mark_processed: boolean(raw, "mark-processed")?,
        pushgateway: match raw.get("pushgateway") {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Some(u.trim_end_matches('/').to_string())
            }
            Some(u) => {
                return Err(Error::Config(format!(
                    "--pushgateway `{u}` must start with http:// or https://"
                )));
            }
            None => None,
        },
        metrics_file: raw.get("metrics-file").map(PathBuf::from),
    })
}

fn produce_args(
    raw: &BTreeMap<&'static str, String>,
    global: &Global,
) -> Result<crate::produce::ProduceConfig> {
    use crate::produce::{OnBadLine, ProduceConfig, Source};
    let rate = match raw.get("rate") {
        None => None,
        Some(text) => {
            let r: f64 = text
                .trim()
                .parse()
                .map_err(|_| Error::Config(format!("--rate `{text}` is not a number")))?;
            if !(r > 0.0 && r.is_finite()) {
                return Err(Error::Config(format!("--rate {text} must be above 0")));
            }
            Some(r)
        }
    };
    let generate_flags = ["count", "duration", "payload-bytes", "keys"];
    let source = match raw.get("from") {
        Some(path) => {
            if let Some(f) = generate_flags.iter().find(|f| raw.contains_key(**f)) {
                return Err(Error::Config(format!(
                    "--{f} generates events and --from ingests them; use one"
                )));
            }
            Source::Ndjson { path: path.clone() }
        }
        None => {
            let count = match raw.get("count") {
                Some(_) => Some(number(raw, "count", 0u64, 0, u64::MAX)?),
                None => None,
            };
            let duration = match raw.get("duration") {
                Some(_) => Some(duration(raw, "duration", Duration::ZERO)?),
                None => None,
            };
            if count.is_none() && duration.is_none() {
                return Err(Error::Usage(
                    "`seqtail produce` needs --count N, --duration D or --from FILE".into(),
                ));
            }
            Source::Generate {
                count,
                duration,
                payload_bytes: number(raw, "payload-bytes", 512usize, 0, 10 << 20)?,
                keys: number(raw, "keys", 100u64, 1, u64::MAX)?,
            }
        }
    };
    if raw.contains_key("id-prefix") && raw.contains_key("id-field") {
        return Err(Error::Config(
            "--id-prefix and --id-field both set; use one".into(),
        ));
    }
    let on_bad_line = match raw.get("on-bad-line").map(String::as_str) {
        None | Some("fail") => OnBadLine::Fail,
        Some("skip") => OnBadLine::Skip,
        Some(other) => {
            return Err(Error::Config(format!(
                "--on-bad-line `{other}`: use fail or skip"
            )));
        }
    };
    Ok(ProduceConfig {
        index: global.index.clone(),
        source,
        rate,
        bulk_size: number(raw, "bulk-size", 500usize, 1, 100_000)?,
        routing_field: raw.get("routing-field").cloned(),
        id_prefix: raw.get("id-prefix").cloned(),
        id_field: raw.get("id-field").cloned(),
        on_bad_line,
        retry_timeout: global.client.retry_timeout,
    })
}

/// Parses `I/N` with `I < N`.
pub fn parse_slice(text: &str) -> Result<Slice> {
    let bad = || {
        Error::Config(format!(
            "--slice `{text}`: write I/N with 0 <= I < N, e.g. 0/3"
        ))
    };
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let index: u32 = i.trim().parse().map_err(|_| bad())?;
    let count: u32 = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Slice { index, count })
}

/// Group names: `[a-z0-9][a-z0-9._-]{0,99}`.
pub fn validate_group(group: &str) -> Result<()> {
    let ok = !group.is_empty()
        && group.len() <= 100
        && group.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && group
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--group `{group}` is not a valid group name: use 1 to 100 of a-z 0-9 . _ -, \
             starting with a letter or digit"
        )))
    }
}

/// Index names before they reach a URL path: lowercase letters, digits, `.`, `_`, `-`.
pub fn validate_index_name(name: &str, flag: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.starts_with(['-', '_', '+'])
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{flag} `{name}` is not a valid index name: use lowercase letters, digits, . _ -, \
             not starting with - or _"
        )))
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    raw: &BTreeMap<&'static str, String>,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T> {
    let Some(text) = raw.get(name) else {
        return Ok(default);
    };
    let n: T = text
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("--{name} `{text}` is not a whole number")))?;
    if n < min || n > max {
        return Err(Error::Config(format!(
            "--{name} {n} is out of range {min}..={max}"
        )));
    }
    Ok(n)
}

fn duration(
    raw: &BTreeMap<&'static str, String>,
    name: &str,
    default: Duration,
) -> Result<Duration> {
    match raw.get(name) {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|e| Error::Config(format!("--{name}: {e}"))),
    }
}

fn boolean(raw: &BTreeMap<&'static str, String>, name: &str) -> Result<bool> {
    match raw.get(name).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "" | "0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(Error::Config(format!(
            "{} `{v}`: use true or false",
            env_name(name)
        ))),
    }
}

/// `--help` text, for the whole program or one command.
pub fn help_text(topic: Option<&str>) -> String {
    let mut out = String::new();
    let render = |out: &mut String, flags: &[Flag]| {
        for f in flags {
            let left = match f.value {
                Some(v) => format!("--{} {v}", f.name),
                None => format!("--{}", f.name),
            };
            out.push_str(&format!(
                "  {left:<34} {}\n  {:<34} env {}\n",
                f.help,
                "",
                env_name(f.name)
            ));
        }
    };
    match topic.and_then(|t| command_flags(t).map(|f| (t, f))) {
        Some((name, flags)) => {
            let about = COMMANDS
                .iter()
                .find(|c| c.0 == name)
                .map(|c| c.1)
                .unwrap_or("");
            let usage = match name {
                "groups" => {
                    "seqtail groups list [--json]\n       seqtail groups describe GROUP [--json]\n       seqtail groups history GROUP [--limit N] [--json]"
                }
                "offsets" => {
                    "seqtail offsets reset GROUP --to earliest|latest|seq:N|time:RFC3339 [--shard S] [--execute] [--force]\n       seqtail offsets delete GROUP [--execute] [--force]"
                }
                "run" => "seqtail run --group GROUP [OPTIONS]",
                "health" => "seqtail health --group GROUP [--max-lag N] [--max-age DURATION]",
                _ => "",
            };
            let usage = if usage.is_empty() {
                format!("seqtail {name} [OPTIONS]")
            } else {
                usage.to_string()
            };
            out.push_str(&format!(
                "seqtail {name}: {about}\n\nUsage: {usage}\n\nOptions:\n"
            ));
            render(&mut out, flags);
        }
        None => {
            out.push_str(&format!(
                "seqtail {}: a resumable, gap-free event stream over an OpenSearch index\n\n\
                 Usage: seqtail [GLOBAL OPTIONS] <COMMAND> [OPTIONS]\n\nCommands:\n",
                env!("CARGO_PKG_VERSION")
            ));
            for (name, about) in COMMANDS {
                out.push_str(&format!("  {name:<10} {about}\n"));
            }
            out.push_str(
                "\n`seqtail help <COMMAND>` or `seqtail <COMMAND> --help` lists its options.\n",
            );
        }
    }
    out.push_str("\nGlobal options (every flag also reads SEQTAIL_<FLAG>; flags win):\n");
    render(&mut out, GLOBAL);
    out.push_str(
        "  -v, -vv, -q                        more or less logging (RUST_LOG overrides)\n  \
         -h, --help / -V, --version\n\n\
         Secrets: SEQTAIL_PASSWORD_FILE reads the password from a file; setting a value and a \
         file is an error.\nDurations: 500ms, 30s, 5m, 1h.\n\
         Exit codes: 0 done, 1 sink failed, 64 usage, 65 offsets unusable, 69 OpenSearch \
         unavailable,\n70 internal, 75 shards owned by another run, 78 configuration.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parse_env(s: &str, env: &[(&str, &str)]) -> Result<Invocation> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&args(s), &env)
    }

    #[test]
    fn run_defaults_and_flags() {
        let inv = parse_env("run --group g1 --batch-size 50 --until-caught-up", &[]).unwrap();
        let Command::Run(run) = inv.command else {
            panic!()
        };
        assert_eq!(run.group, "g1");
        assert_eq!(run.batch_size, 50);
        assert!(run.limits.until_caught_up);
        assert_eq!(run.limits.max_batches, Some(100));
        assert_eq!(run.sink, SinkChoice::Stdout);
        assert_eq!(inv.global.index, "events");
    }

    #[test]
    fn flags_win_over_environment() {
        let inv = parse_env(
            "--index a run --group g",
            &[
                ("SEQTAIL_INDEX", "b"),
                ("SEQTAIL_BATCH_SIZE", "7"),
                ("SEQTAIL_GROUP", "x"),
            ],
        )
        .unwrap();
        assert_eq!(inv.global.index, "a");
        let Command::Run(run) = inv.command else {
            panic!()
        };
        assert_eq!(run.batch_size, 7);
        assert_eq!(run.group, "g");
    }

    #[test]
    fn usage_errors_are_64_and_bad_values_78() {
        let e = parse_env("run --group g --bogus", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 64, "{e}");
        let e = parse_env("run --group", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 64, "{e}");
        let e = parse_env("frobnicate", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 64, "{e}");
        let e = parse_env("run", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 64, "{e}");
        let e = parse_env("run --group g --batch-size zero", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 78, "{e}");
        let e = parse_env("run --group Bad!", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 78, "{e}");
        let e = parse_env("run --group g --max-duration 10", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 78, "{e}");
        let e = parse_env("--index ../x run --group g", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 78, "{e}");
    }

    #[test]
    fn secrets_value_and_file_conflict() {
        let e = parse_env(
            "run --group g",
            &[
                ("SEQTAIL_PASSWORD", "hunter2"),
                ("SEQTAIL_PASSWORD_FILE", "/nonexistent"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(!e.to_string().contains("hunter2"));
        let e = parse_env(
            "run --group g",
            &[("SEQTAIL_PASSWORD_FILE", "/nonexistent/pw")],
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
    }

    #[test]
    fn password_file_is_read_and_hidden() {
        let dir = std::env::temp_dir().join(format!("seqtail-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let inv = parse_env(
            &format!(
                "--username u --password-file {} run --group g",
                path.display()
            ),
            &[],
        )
        .unwrap();
        let pw = inv.global.client.password.clone().unwrap();
        assert_eq!(pw.expose(), "s3cret");
        assert!(!format!("{inv:?}").contains("s3cret"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn indexed_job_slices() {
        let inv = parse_env("run --group g --slices 3", &[("JOB_COMPLETION_INDEX", "2")]).unwrap();
        let Command::Run(run) = inv.command else {
            panic!()
        };
        assert_eq!(run.slice, Some(Slice { index: 2, count: 3 }));
        assert_eq!(
            parse_env("run --group g --slices 3", &[])
                .unwrap_err()
                .exit_code(),
            78
        );
        let e =
            parse_env("run --group g --slices 3", &[("JOB_COMPLETION_INDEX", "3")]).unwrap_err();
        assert_eq!(e.exit_code(), 78);
    }

    #[test]
    fn lease_must_outlive_the_run() {
        let e = parse_env("run --group g --max-duration 10m --lease-ttl 5m", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 78, "{e}");
        let inv = parse_env("run --group g --max-duration 10m", &[]).unwrap();
        let Command::Run(run) = inv.command else {
            panic!()
        };
        assert_eq!(run.lease_ttl, Duration::from_secs(660));
    }

    #[test]
    fn reset_targets() {
        let inv = parse_env("offsets reset g --to seq:42 --shard 1", &[]).unwrap();
        let Command::OffsetsReset(r) = inv.command else {
            panic!()
        };
        assert_eq!(r.to, ResetTo::SeqNo(42));
        assert_eq!(r.shard, Some(1));
        assert!(!r.execute);
        let inv = parse_env(
            "offsets reset g --to time:1970-01-01T00:00:01Z --execute",
            &[],
        )
        .unwrap();
        let Command::OffsetsReset(r) = inv.command else {
            panic!()
        };
        assert_eq!(r.to, ResetTo::Time(1000));
        assert!(r.execute);
        assert_eq!(
            parse_env("offsets reset g --to yesterday", &[])
                .unwrap_err()
                .exit_code(),
            78
        );
        assert_eq!(
            parse_env("offsets reset g", &[]).unwrap_err().exit_code(),
            64
        );
        assert_eq!(
            parse_env("offsets frob g", &[]).unwrap_err().exit_code(),
            64
        );
        assert_eq!(
            parse_env("groups describe", &[]).unwrap_err().exit_code(),
            64
        );
    }

    #[test]
    fn slices_parse() {
        assert_eq!(parse_slice("1/3").unwrap(), Slice { index: 1, count: 3 });
        assert!(parse_slice("3/3").is_err());
        assert!(parse_slice("x").is_err());
    }

    #[test]
    fn help_names_env_vars() {
        let inv = parse_env("run --help", &[]).unwrap();
        let Command::Help(text) = inv.command else {
            panic!()
        };
        assert!(text.contains("SEQTAIL_BATCH_SIZE"));
        assert!(text.contains("--until-caught-up"));
    }
}
