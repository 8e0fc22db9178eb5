//! `boveda scan` and `boveda redact`: find and de-identify personal data in files or stdin,
//! streaming with bounded memory whatever the input size.
//!
//! The input is cut into chunks of about `--chunk-bytes` (1 MiB), at the last line end inside
//! the chunk when there is one, else at a character boundary (a line longer than a chunk).
//! Each chunk is scanned together with up to [`OVERLAP`] bytes of its neighbours on both
//! sides, and owns the findings that start inside it, so an entity cut by a chunk boundary is
//! still found whole. Chunks go to `--jobs` worker threads and come back in order; at most
//! `2 × jobs` chunks are in flight, so memory is about `2 × jobs × chunk` plus the detector.
//!
//! Invalid UTF-8: each chunk is decoded lossily, so an invalid byte sequence becomes U+FFFD in
//! the output and every valid byte passes through unchanged. Offsets in `scan --jsonl` count
//! the decoded text (identical to the input's when it is valid UTF-8).
//!
//! CSV and JSON lines are processed record by record (a record is never split), so one record
//! must fit in memory. Nothing here prints a scanned value unless `--show-values` is given.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use boveda_core::deid::{Dialect, OperatorParams};
use boveda_detect::operators::{Operator, OperatorConfig, Span, anonymize};
use boveda_detect::{
    CustomRecognizer, DenyList, DetectOptions, Detector, DetectorConfig, Entity, Language,
};
use clap::{Args, ValueEnum};

/// Bytes of each neighbouring chunk scanned with a chunk; an entity longer than this that
/// crosses a chunk boundary may be replaced only in part.
const OVERLAP: usize = 1024;

/// `boveda scan PATH|-`.
#[derive(Args)]
pub(crate) struct ScanArgs {
    /// File to scan, or `-` for stdin.
    path: String,
    /// Print one JSON line per finding (entity, byte and character offsets, line, score) on
    /// stdout; the table of counts goes to stderr.
    #[arg(long)]
    jsonl: bool,
    /// Include the matched text in `--jsonl` output. It is personal data: handle it as such.
    #[arg(long)]
    show_values: bool,
    /// Exit with status 1 when anything is found (for CI pipelines).
    #[arg(long)]
    fail_on_pii: bool,
    /// Detection settings (language, threshold, entities, allow/deny lists, recognizers) from
    /// the same TOML file `redact` takes; operators are ignored.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    stream: StreamArgs,
}

/// `boveda redact PATH|- --config FILE`.
#[derive(Args)]
pub(crate) struct RedactArgs {
    /// File to de-identify, or `-` for stdin.
    path: String,
    /// TOML file: operators per entity (`[operators.PHONE_NUMBER]`, `[operators.DEFAULT]`),
    /// language, score threshold, entities, allow and deny lists, custom recognizers.
    #[arg(long)]
    config: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// CSV: the columns to de-identify, by header name (default: all).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// JSON lines: the keys whose string values are de-identified, at any depth (default:
    /// every string value).
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// Write here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    stream: StreamArgs,
}

/// Settings shared by both commands.
#[derive(Args)]
struct StreamArgs {
    /// Worker threads (default: 1).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Chunk size in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    chunk_bytes: usize,
    /// No progress line, even on a terminal.
    #[arg(long)]
    quiet: bool,
}

/// Input formats of `redact`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Plain text; every character is scanned.
    Text,
    /// CSV with a header row; chosen columns are scanned cell by cell.
    Csv,
    /// One JSON value per line; chosen string fields are scanned.
    Jsonl,
}

/// The TOML configuration of `redact` (and `scan --config`).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PiiConfig {
    language: Option<String>,
    score_threshold: Option<f32>,
    entities: Option<Vec<String>>,
    allow_list: Vec<String>,
    context: Vec<String>,
    operators: HashMap<String, OperatorParams>,
    deny_lists: Vec<DenyList>,
    recognizers: Vec<CustomRecognizer>,
}

/// Everything a worker needs, shared read-only.
struct Engine {
    detector: Detector,
    opts: DetectOptions,
    ops: OperatorConfig,
}

impl Engine {
    fn load(config: Option<&Path>, with_operators: bool) -> anyhow::Result<Engine> {
        let cfg: PiiConfig = match config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read pii config file {}", p.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow!("pii config file {}: {}", p.display(), e.message()))?
            }
            None => PiiConfig::default(),
        };
        let language = match cfg.language.as_deref() {
            Some(code) => Language::from_code(code).context("pii config file: language")?,
            None => Language::En,
        };
        let detector = Detector::new(DetectorConfig {
            deny_lists: cfg.deny_lists,
            recognizers: cfg.recognizers,
        })
        .context("pii config file: recognizers")?;
        let threshold = cfg.score_threshold.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&threshold) {
            bail!("pii config file: score_threshold must be between 0 and 1");
        }
        let opts = DetectOptions {
            language,
            entities: cfg
                .entities
                .map(|l| l.iter().map(|n| Entity::from_name(n)).collect()),
            score_threshold: threshold,
            allow_list: cfg.allow_list,
            allow_pattern: None,
            context: cfg.context,
        };
        let mut ops = OperatorConfig {
            language,
            ..OperatorConfig::default()
        };
        if with_operators {
            for (entity, mut params) in cfg.operators {
                if let Some(var) = params.key_env.clone() {
                    params.key = Some(std::env::var(&var).map_err(|_| {
                        anyhow!("pii config file: operators.{entity}.key_env names the unset variable {var}")
                    })?);
                }
                let op: Operator = params
                    .build(Dialect::Native, language)
                    .with_context(|| format!("pii config file: operators.{entity}"))?;
                if entity == "DEFAULT" {
                    ops.default = op;
                } else {
                    ops.per_entity.insert(entity, op);
                }
            }
        }
        Ok(Engine {
            detector,
            opts,
            ops,
        })
    }

    /// De-identify one whole value (a CSV cell, a JSON string).
    fn redact_value(&self, value: &str) -> anyhow::Result<String> {
        if value.is_empty() {
            return Ok(String::new());
        }
        let spans: Vec<Span> = self
            .detector
            .detect(value, &self.opts)
            .iter()
            .map(Span::from)
            .collect();
        if spans.is_empty() {
            return Ok(value.to_owned());
        }
        Ok(anonymize(value, &spans, &self.ops)?.text)
    }
}

// ------------------------------------------------------------------ chunked text input

/// A piece of text with up to [`OVERLAP`] bytes of its neighbours for context.
struct Window {
    left: String,
    owned: String,
    right: String,
}

/// Reads the input as chunks cut at line ends (or at a character boundary inside a long
/// line), decoded lossily.
struct Chunker<R> {
    input: R,
    chunk: usize,
    pending: Vec<u8>,
    eof: bool,
}

impl<R: Read> Chunker<R> {
    fn new(input: R, chunk: usize) -> Self {
        Self {
            input,
            chunk: chunk.max(16),
            pending: Vec::new(),
            eof: false,
        }
    }

    fn next_chunk(&mut self) -> std::io::Result<Option<(String, usize)>> {
        while !self.eof && self.pending.len() < self.chunk {
            let mut buf = vec![0u8; self.chunk - self.pending.len()];
            let n = self.input.read(&mut buf)?;
            if n == 0 {
                self.eof = true;
            } else {
                self.pending.extend_from_slice(&buf[..n]);
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let cut = if self.eof && self.pending.len() <= self.chunk {
            self.pending.len()
        } else {
            let limit = self.chunk.min(self.pending.len());
            match self.pending[..limit].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                // A long line: cut at `limit`, or before a character that would be cut in two.
                None => utf8_cut(&self.pending, limit),
            }
        };
        let rest = self.pending.split_off(cut);
        let bytes = std::mem::replace(&mut self.pending, rest);
        let raw_len = bytes.len();
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(Some((text, raw_len)))
    }
}

/// `limit`, or the start of a multi-byte UTF-8 sequence that begins in the last three bytes
/// before `limit` and does not end before it; never 0.
fn utf8_cut(bytes: &[u8], limit: usize) -> usize {
    for i in (limit.saturating_sub(3)..limit).rev() {
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let len = match b {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if i + len > limit && i > 0 { i } else { limit };
    }
    limit
}

fn tail(s: &str, n: usize) -> String {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].to_owned()
}

fn head(s: &str, n: usize) -> String {
    let mut i = n.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    s[..i].to_owned()
}

/// Windows over the chunks: each chunk with the tail of the one before and the head of the
/// one after. Yields the raw byte count with each window for progress.
fn windows<R: Read>(
    mut chunker: Chunker<R>,
) -> impl Iterator<Item = std::io::Result<(Window, usize)>> {
    let mut prev_tail = String::new();
    let mut current: Option<(String, usize)> = None;
    let mut started = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if !started {
            started = true;
            match chunker.next_chunk() {
                Ok(c) => current = c,
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
        let (owned, raw) = current.take()?;
        let next = match chunker.next_chunk() {
            Ok(n) => n,
            Err(e) => {
                done = true;
                return Some(Err(e));
            }
        };
        let right = next
            .as_ref()
            .map(|(n, _)| head(n, OVERLAP))
            .unwrap_or_default();
        let left = std::mem::replace(&mut prev_tail, tail(&owned, OVERLAP));
        current = next;
        Some(Ok((Window { left, owned, right }, raw)))
    })
}

/// One finding of a window, relative to its owned text.
struct Hit {
    entity: String,
    start: usize,
    end: usize,
    char_start: usize,
    char_end: usize,
    line: usize,
    score: f32,
    replacement: Option<String>,
    value: Option<String>,
}

/// A processed window.
struct Done {
    owned: String,
    hits: Vec<Hit>,
    chars: usize,
    lines: usize,
    raw: usize,
}

fn process_window(
    engine: &Engine,
    w: Window,
    raw: usize,
    redact: bool,
    keep_values: bool,
) -> anyhow::Result<Done> {
    let mut text = String::with_capacity(w.left.len() + w.owned.len() + w.right.len());
    text.push_str(&w.left);
    text.push_str(&w.owned);
    text.push_str(&w.right);
    let base = w.left.len();
    let base_chars = w.left.chars().count();
    let own_end = base + w.owned.len();
    let findings = engine.detector.detect(&text, &engine.opts);
    let mut hits = Vec::new();
    let mut line = 0;
    let mut line_at = base;
    for f in findings
        .iter()
        .filter(|f| f.start >= base && f.start < own_end)
    {
        line += text.as_bytes()[line_at..f.start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        line_at = f.start;
        let value = &text[f.range()];
        let replacement = if redact {
            let span = [Span {
                entity: f.entity.clone(),
                start: 0,
                end: value.len(),
                score: f.score,
            }];
            Some(anonymize(value, &span, &engine.ops)?.text)
        } else {
            None
        };
        hits.push(Hit {
            entity: f.entity.as_str().to_owned(),
            start: f.start - base,
            end: f.end - base,
            char_start: f.char_start - base_chars,
            char_end: f.char_end - base_chars,
            line,
            score: f.score,
            replacement,
            value: keep_values.then(|| value.to_owned()),
        });
    }
    let chars = w.owned.chars().count();
    let lines = w.owned.bytes().filter(|&b| b == b'\n').count();
    Ok(Done {
        owned: w.owned,
        hits,
        chars,
        lines,
        raw,
    })
}

// ------------------------------------------------------------------ ordered parallel map

/// Run `work` over `source` on `jobs` threads and hand results to `sink` in input order, with
/// at most `2 × jobs` items between the reader and the sink.
fn ordered_map<J, O, S, W, K>(jobs: usize, source: S, work: W, mut sink: K) -> anyhow::Result<()>
where
    J: Send,
    O: Send,
    S: Iterator<Item = std::io::Result<J>> + Send,
    W: Fn(J) -> anyhow::Result<O> + Sync,
    K: FnMut(O) -> anyhow::Result<()>,
{
    let jobs = jobs.max(1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(2 * jobs);
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, J)>(jobs);
        // Only the workers hold the receiver, so a reader blocked on a full queue is released
        // when they all stop.
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let (out_tx, out_rx) = mpsc::channel::<(u64, anyhow::Result<O>)>();
        let reader = scope.spawn(move || -> std::io::Result<()> {
            for (seq, item) in (0u64..).zip(source) {
                let item = item?;
                // Blocks while 2 × jobs items are in flight; fails when the sink has stopped.
                if permit_tx.send(()).is_err() || job_tx.send((seq, item)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        for _ in 0..jobs {
            let out_tx = out_tx.clone();
            let job_rx = std::sync::Arc::clone(&job_rx);
            let work = &work;
            scope.spawn(move || {
                loop {
                    let next = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, item)) = next else { break };
                    if out_tx.send((seq, work(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(out_tx);
        drop(job_rx);
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut result = Ok(());
        for (seq, out) in out_rx.iter() {
            waiting.insert(seq, out);
            while let Some(out) = waiting.remove(&next) {
                next += 1;
                let _ = permit_rx.try_recv();
                if let Err(e) = out.and_then(&mut sink) {
                    result = Err(e);
                    break;
                }
            }
            if result.is_err() {
                break;
            }
        }
        // Dropping the receivers stops the reader and the workers.
        drop(permit_rx);
        drop(out_rx);
        let read = reader
            .join()
            .map_err(|_| anyhow!("the reader thread stopped unexpectedly"))?;
        result?;
        read.context("cannot read the input")?;
        Ok(())
    })
}

// ------------------------------------------------------------------ progress

/// A progress line on stderr when stderr is a terminal: bytes done, total, MB/s.
struct Progress {
    on: bool,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(quiet: bool, total: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            on: !quiet && std::io::stderr().is_terminal(),
            total,
            done: 0,
            start: now,
            last: now,
        }
    }

    fn add(&mut self, bytes: usize) {
        self.done += bytes as u64;
        if self.on && self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            self.draw();
        }
    }

    fn draw(&self) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-6);
        let mb = self.done as f64 / 1e6;
        let line = match self.total {
            Some(t) if t > 0 => format!(
                "\r{:>5.1}%  {mb:.1} / {:.1} MB  {:.1} MB/s ",
                100.0 * self.done as f64 / t as f64,
                t as f64 / 1e6,
                mb / secs
            ),
            _ => format!("\r{mb:.1} MB  {:.1} MB/s ", mb / secs),
        };
        eprint!("{line}");
    }

    fn finish(&self) {
        if self.on {
            self.draw();
            eprintln!();
        }
    }
}

// ------------------------------------------------------------------ commands

fn open_input(path: &str) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if path == "-" {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let f = std::fs::File::open(path).with_context(|| format!("cannot open input {path}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(f), len))
}

fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(p)
                .with_context(|| format!("cannot create output {}", p.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout().lock())),
    })
}

fn report(e: &anyhow::Error) -> ExitCode {
    let s = format!("{e:#}");
    eprintln!("error: {s}");
    let hint = if s.contains("pii config file") {
        "fix the named setting in the TOML file; see `boveda redact --help` for its keys"
    } else if s.contains("cannot open input") || s.contains("cannot read the input") {
        "check the path and its permissions, or pass `-` to read stdin"
    } else if s.contains("cannot create output") || s.contains("cannot write") {
        "check that the output directory exists and is writable"
    } else if s.contains("csv") {
        "check that the input is CSV with a header row, or use --format text"
    } else {
        "run the command with --help"
    };
    eprintln!("hint: {hint}");
    ExitCode::from(2)
}

/// `boveda scan`: 0 when done, 1 with `--fail-on-pii` and findings, 2 on error.
pub(crate) fn scan(a: ScanArgs) -> ExitCode {
    match run_scan(&a) {
        Ok(found) if found > 0 && a.fail_on_pii => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn run_scan(a: &ScanArgs) -> anyhow::Result<u64> {
    let engine = Engine::load(a.config.as_deref(), false)?;
    let (input, total) = open_input(&a.path)?;
    let mut progress = Progress::new(a.stream.quiet, total);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let (mut byte_base, mut char_base, mut line_base) = (0usize, 0usize, 1usize);
    let show = a.show_values;
    ordered_map(
        a.stream.jobs,
        windows(Chunker::new(input, a.stream.chunk_bytes)),
        |(w, raw)| process_window(&engine, w, raw, false, show),
        |done: Done| {
            for h in &done.hits {
                *counts.entry(h.entity.clone()).or_default() += 1;
                if a.jsonl {
                    let mut v = serde_json::json!({
                        "entity": h.entity,
                        "start": byte_base + h.start,
                        "end": byte_base + h.end,
                        "char_start": char_base + h.char_start,
                        "char_end": char_base + h.char_end,
                        "line": line_base + h.line,
                        "score": (f64::from(h.score) * 1e4).round() / 1e4,
                    });
                    if let Some(value) = &h.value {
                        v["text"] = serde_json::Value::String(value.clone());
                    }
                    writeln!(out, "{v}").context("cannot write the output")?;
                }
            }
            byte_base += done.owned.len();
            char_base += done.chars;
            line_base += done.lines;
            progress.add(done.raw);
            Ok(())
        },
    )?;
    progress.finish();
    out.flush().context("cannot write the output")?;
    let total: u64 = counts.values().sum();
    let mut table = String::new();
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
    table.push_str(&format!("{:<20} {:>10}\n", "ENTITY", "COUNT"));
    for (e, n) in rows {
        table.push_str(&format!("{e:<20} {n:>10}\n"));
    }
    table.push_str(&format!("{:<20} {:>10}\n", "TOTAL", total));
    if a.jsonl {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    Ok(total)
}

/// `boveda redact`: 0 when done, 2 on error.
pub(crate) fn redact(a: RedactArgs) -> ExitCode {
    match run_redact(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn run_redact(a: &RedactArgs) -> anyhow::Result<()> {
    let engine = Engine::load(Some(&a.config), true)?;
    let (input, total) = open_input(&a.path)?;
    let mut out = open_output(a.output.as_deref())?;
    let mut progress = Progress::new(a.stream.quiet, total);
    match a.format {
        Format::Text => redact_text(a, &engine, input, &mut out, &mut progress)?,
        Format::Jsonl => redact_jsonl(a, &engine, input, &mut out, &mut progress)?,
        Format::Csv => redact_csv(a, &engine, input, &mut out, &mut progress)?,
    }
    progress.finish();
    out.flush().context("cannot write the output")?;
    Ok(())
}

fn redact_text(
    a: &RedactArgs,
    engine: &Engine,
    input: Box<dyn Read + Send>,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    // Bytes at the start of the next chunk already covered by a replacement that ran past the
    // end of the previous one.
    let mut skip = 0usize;
    ordered_map(
        a.stream.jobs,
        windows(Chunker::new(input, a.stream.chunk_bytes)),
        |(w, raw)| process_window(engine, w, raw, true, false),
        |done: Done| {
            let owned = &done.owned;
            let mut pos = skip.min(owned.len());
            let mut carry = skip.saturating_sub(owned.len());
            for h in &done.hits {
                if h.start < pos {
                    continue;
                }
                out.write_all(&owned.as_bytes()[pos..h.start])
                    .context("cannot write the output")?;
                out.write_all(h.replacement.as_deref().unwrap_or_default().as_bytes())
                    .context("cannot write the output")?;
                pos = h.end;
            }
            if pos > owned.len() {
                carry = pos - owned.len();
            } else {
                out.write_all(&owned.as_bytes()[pos..])
                    .context("cannot write the output")?;
            }
            skip = carry;
            progress.add(done.raw);
            Ok(())
        },
    )
}

/// Lines in groups of about `chunk` bytes; a line is never split.
fn line_batches<R: Read>(
    input: R,
    chunk: usize,
) -> impl Iterator<Item = std::io::Result<(Vec<Vec<u8>>, usize)>> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut batch = Vec::new();
        let mut size = 0;
        while size < chunk {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => {
                    done = true;
                    break;
                }
                Ok(n) => {
                    size += n;
                    batch.push(line);
                }
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
        (!batch.is_empty()).then_some(Ok((batch, size)))
    })
}

fn redact_json(
    engine: &Engine,
    v: &mut serde_json::Value,
    fields: &[String],
    chosen: bool,
) -> anyhow::Result<()> {
    use serde_json::Value;
    match v {
        Value::String(s) if chosen => *s = engine.redact_value(s)?,
        Value::Array(items) => {
            for item in items {
                redact_json(engine, item, fields, chosen)?;
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let pick = chosen || fields.iter().any(|f| f == k);
                redact_json(engine, item, fields, pick)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn redact_jsonl(
    a: &RedactArgs,
    engine: &Engine,
    input: Box<dyn Read + Send>,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let all = a.fields.is_empty();
    let mut not_json = 0u64;
    ordered_map(
        a.stream.jobs,
        line_batches(input, a.stream.chunk_bytes),
        |(lines, raw): (Vec<Vec<u8>>, usize)| -> anyhow::Result<(String, u64, usize)> {
            let mut text = String::new();
            let mut bad = 0;
            for line in lines {
                let s = String::from_utf8_lossy(&line);
                let (body, nl) = match s.strip_suffix('\n') {
                    Some(b) => (b.strip_suffix('\r').unwrap_or(b), true),
                    None => (&*s, false),
                };
                if body.trim().is_empty() {
                    text.push_str(body);
                } else {
                    match serde_json::from_str::<serde_json::Value>(body) {
                        Ok(mut v) => {
                            redact_json(engine, &mut v, &a.fields, all)?;
                            text.push_str(&v.to_string());
                        }
                        Err(_) => {
                            // Not JSON: de-identified as text rather than passed through.
                            bad += 1;
                            text.push_str(&engine.redact_value(body)?);
                        }
                    }
                }
                if nl {
                    text.push('\n');
                }
            }
            Ok((text, bad, raw))
        },
        |(text, bad, raw)| {
            not_json += bad;
            out.write_all(text.as_bytes())
                .context("cannot write the output")?;
            progress.add(raw);
            Ok(())
        },
    )?;
    if not_json > 0 {
        eprintln!("warning: {not_json} lines were not JSON and were de-identified as plain text");
    }
    Ok(())
}

fn redact_csv(
    a: &RedactArgs,
    engine: &Engine,
    input: Box<dyn Read + Send>,
    out: &mut dyn Write,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let headers = reader
        .byte_headers()
        .context("csv: cannot read the header row")?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let selected: Vec<bool> = if a.columns.is_empty() {
        vec![true; names.len()]
    } else {
        for c in &a.columns {
            if !names.iter().any(|n| n == c) {
                bail!("csv: --columns names a column that is not in the header row");
            }
        }
        names.iter().map(|n| a.columns.contains(n)).collect()
    };
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
    writer
        .write_record(&headers)
        .context("cannot write the output")?;
    let chunk = a.stream.chunk_bytes;
    let mut records = reader.into_byte_records();
    let mut failed = None;
    let source = std::iter::from_fn(|| {
        let mut batch = Vec::new();
        let mut size = 0;
        while size < chunk {
            match records.next() {
                Some(Ok(r)) => {
                    size += r.as_slice().len() + r.len();
                    batch.push(r);
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => break,
            }
        }
        (!batch.is_empty()).then_some(Ok((batch, size)))
    });
    ordered_map(
        a.stream.jobs,
        source,
        |(batch, raw): (Vec<csv::ByteRecord>, usize)| -> anyhow::Result<(Vec<Vec<String>>, usize)> {
            let mut rows = Vec::with_capacity(batch.len());
            for r in batch {
                let mut row = Vec::with_capacity(r.len());
                for (i, cell) in r.iter().enumerate() {
                    let cell = String::from_utf8_lossy(cell);
                    if selected.get(i).copied().unwrap_or(a.columns.is_empty()) {
                        row.push(engine.redact_value(&cell)?);
                    } else {
                        row.push(cell.into_owned());
                    }
                }
                rows.push(row);
            }
            Ok((rows, raw))
        },
        |(rows, raw)| {
            for row in rows {
                writer
                    .write_record(&row)
                    .context("cannot write the output")?;
            }
            progress.add(raw);
            Ok(())
        },
    )?;
    if let Some(e) = failed {
        // The csv error names a position, not a value.
        let at = e
            .position()
            .map(|p| format!(" at line {}", p.line()))
            .unwrap_or_default();
        bail!("csv: the input is not valid CSV{at}");
    }
    writer.flush().context("cannot write the output")?;
    Ok(())
}
