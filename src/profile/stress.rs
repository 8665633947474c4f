//! Stress profiles (`stress-profiles/*.toml`): what an overnight run targets and how hard it
//! pushes. Parsing is strict: an unknown key, a wrong type, an unknown driver, format or op
//! weight is rejected with the file, the line and the key at fault.
use super::driver::{by_name, DriverProfile, ALL};
use crate::program::generate::{GenConfig, ACTIONS};
use crate::program::{Arg, FourCc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A profile as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    description: Option<String>,
    duration: Spanned<toml::Value>,
    workers: Option<u32>,
    seed: Option<u64>,
    epoch_ms: Option<u64>,
    ops: Option<usize>,
    invalid_percent: Option<Spanned<u32>>,
    import_percent: Option<Spanned<u32>>,
    thread_percent: Option<Spanned<u32>>,
    pump_percent: Option<Spanned<u32>>,
    #[serde(default)]
    switches: Vec<Spanned<String>>,
    #[serde(default)]
    weights: BTreeMap<String, Spanned<u32>>,
    #[serde(default)]
    deadlines: RawDeadlines,
    #[serde(default)]
    oracles: RawOracles,
    target: Vec<RawTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    op_ms: Option<u64>,
    max_wait_ms: Option<u32>,
    fence_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOracles {
    grace_ms: Option<u64>,
    stop_on_finding: Option<bool>,
    sw_sync: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    driver: Spanned<String>,
    node: Option<PathBuf>,
    contexts: Option<u32>,
    #[serde(default)]
    out_formats: Vec<Spanned<String>>,
    #[serde(default)]
    cap_formats: Vec<Spanned<String>>,
    #[serde(default)]
    sizes: Vec<Spanned<[u32; 2]>>,
    trans_time_ms: Option<OneOrMany>,
    workers: Option<u32>,
}

/// `key = 5` or `key = [1, 300]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    fn to_vec(&self) -> Vec<u32> {
        match self {
            OneOrMany::One(v) => vec![*v],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// One target driver of a profile.
#[derive(Clone, Debug)]
pub struct Target {
    /// Generator settings (driver, contexts, formats, sizes, weights, invalid share).
    pub gen: GenConfig,
    /// `--node`-style override: this node instead of discovery by driver name.
    pub node: Option<PathBuf>,
    /// Share of the workers (relative), default 1.
    pub workers: u32,
}

/// A validated stress profile.
#[derive(Clone, Debug)]
pub struct StressProfile {
    /// Name (default: the file stem).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The file it came from.
    pub path: PathBuf,
    /// How long to run.
    pub duration: Duration,
    /// Worker threads; 0 = one per online CPU.
    pub workers: u32,
    /// Base seed (worker and program seeds derive from it); None = from the clock.
    pub seed: Option<u64>,
    /// Length of an epoch: workers run programs for this long, then all stop for the oracles to
    /// read the kernel's evidence at a quiet point.
    pub epoch: Duration,
    /// Module parameters to set before the run (`module.param=value`, lab fault switches).
    pub switches: Vec<String>,
    /// Deadline of an op beyond its own wait.
    pub op_deadline: Duration,
    /// Longest wait a program may ask for.
    pub max_wait: Duration,
    /// Extra time a published fence gets after a program's wait gave up.
    pub fence_deadline: Duration,
    /// Wait at each epoch end before reading the ledger.
    pub grace: Duration,
    /// End the run at the first finding (time-to-find measurements).
    pub stop_on_finding: bool,
    /// Targets.
    pub targets: Vec<Target>,
}

/// Where in the file a problem is.
/// The share of a stress run's programs that run on several threads when the profile does not
/// say (`thread_percent`): races on shared handles are what an overnight run is for.
pub const DEFAULT_THREAD_PERCENT: u32 = 25;

/// The share of a stress run's programs in which every streaming context has a pump thread when
/// the profile does not say (`pump_percent`): a node kept busy is one whose jobs the chaos hits.
/// Not more: the stale-read oracle can tell which job certainly started only on an idle node
/// and in a program without concurrent ops, so the other half keeps stale reads found fast.
pub const DEFAULT_PUMP_PERCENT: u32 = 50;

fn line_of(src: &str, span: std::ops::Range<usize>) -> usize {
    src[..span.start.min(src.len())].matches('\n').count() + 1
}

/// `"90s"`, `"10m"`, `"8h"` or a number of seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{v}` is not a duration (e.g. 90s, 10m, 8h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{v}` is not a duration (e.g. 90s, 10m, 8h)")),
    };
    Ok(Duration::from_secs(secs))
}

impl StressProfile {
    /// Read and validate a profile file.
    pub fn load(path: &Path) -> anyhow::Result<StressProfile> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read profile {}: {e}", path.display()))?;
        Self::parse(&src, path).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Parse profile text; errors say `file:line: key: problem`.
    pub fn parse(src: &str, path: &Path) -> Result<StressProfile, String> {
        let file = path.display();
        let raw: Raw = toml::from_str(src).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(src, s));
            format!("{file}:{line}: {}", e.message())
        })?;
        let at = |span: std::ops::Range<usize>, key: &str, msg: String| {
            format!("{file}:{}: {key}: {msg}", line_of(src, span))
        };
        let duration = match raw.duration.get_ref() {
            toml::Value::Integer(n) if *n > 0 => Ok(Duration::from_secs(*n as u64)),
            toml::Value::String(s) => parse_duration(s),
            _ => Err("give seconds or a string like \"10m\"".to_string()),
        }
        .map_err(|m| at(raw.duration.span(), "duration", m))?;
        let percent = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
            Some(s) if *s.get_ref() > 100 => Err(at(
                s.span(),
                key,
                format!("{} is not a percentage", s.get_ref()),
            )),
            Some(s) => Ok(*s.get_ref()),
            None => Ok(default),
        };
        let invalid_percent = percent(&raw.invalid_percent, "invalid_percent", 5)?;
        let import_percent = percent(&raw.import_percent, "import_percent", 30)?;
        let thread_percent = percent(
            &raw.thread_percent,
            "thread_percent",
            DEFAULT_THREAD_PERCENT,
        )?;
        let pump_percent = percent(&raw.pump_percent, "pump_percent", DEFAULT_PUMP_PERCENT)?;
        let known: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
        for (name, w) in &raw.weights {
            if !known.contains(&name.as_str()) {
                return Err(at(
                    w.span(),
                    &format!("weights.{name}"),
                    format!("no such op (known: {})", known.join(", ")),
                ));
            }
        }
        for s in &raw.switches {
            crate::corpus::parse_switches(s.get_ref()).map_err(|m| at(s.span(), "switches", m))?;
        }
        if raw.target.is_empty() {
            return Err(format!(
                "{file}: no [[target]]: name at least one driver to stress"
            ));
        }
        let max_wait_ms = raw.deadlines.max_wait_ms.unwrap_or(500);
        let mut targets = Vec::new();
        for t in &raw.target {
            let profile: &'static DriverProfile = by_name(t.driver.get_ref()).ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|p| p.name).collect();
                at(
                    t.driver.span(),
                    "target.driver",
                    format!(
                        "unknown driver `{}` (known: {})",
                        t.driver.get_ref(),
                        names.join(", ")
                    ),
                )
            })?;
            let mut gen = GenConfig::new(profile);
            gen.contexts = t.contexts.unwrap_or(1).max(1);
            gen.body_ops = raw.ops.unwrap_or(30);
            gen.invalid_percent = invalid_percent;
            gen.import_percent = import_percent;
            gen.thread_percent = thread_percent;
            gen.pump_percent = pump_percent;
            gen.max_wait_ms = max_wait_ms;
            gen.trans_time_ms = t
                .trans_time_ms
                .as_ref()
                .map(OneOrMany::to_vec)
                .unwrap_or_default();
            gen.sw_sync = raw.oracles.sw_sync.unwrap_or(profile.lab);
            for (name, w) in &raw.weights {
                gen.weights.insert(name.clone(), *w.get_ref());
            }
            let formats = |list: &[Spanned<String>],
                           allowed: &[FourCc],
                           key: &str|
             -> Result<Vec<FourCc>, String> {
                list.iter()
                    .map(|f| {
                        let fc =
                            FourCc::from_text(f.get_ref()).map_err(|m| at(f.span(), key, m))?;
                        if !allowed.contains(&fc) {
                            let names: Vec<String> =
                                allowed.iter().map(|a| a.to_string()).collect();
                            return Err(at(
                                f.span(),
                                key,
                                format!(
                                    "{} does not take {fc} (it takes {})",
                                    profile.name,
                                    names.join(", ")
                                ),
                            ));
                        }
                        Ok(fc)
                    })
                    .collect()
            };
            gen.out_formats = formats(&t.out_formats, profile.out_formats, "target.out_formats")?;
            gen.cap_formats = formats(&t.cap_formats, profile.cap_formats, "target.cap_formats")?;
            for s in &t.sizes {
                let [w, h] = *s.get_ref();
                if !(profile.width.0..=profile.width.1).contains(&w)
                    || !(profile.height.0..=profile.height.1).contains(&h)
                {
                    return Err(at(
                        s.span(),
                        "target.sizes",
                        format!(
                            "{w}x{h} is outside {}'s {}..{} x {}..{}",
                            profile.name,
                            profile.width.0,
                            profile.width.1,
                            profile.height.0,
                            profile.height.1
                        ),
                    ));
                }
                gen.sizes.push((w, h));
            }
            targets.push(Target {
                gen,
                node: t.node.clone(),
                workers: t.workers.unwrap_or(1).max(1),
            });
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(StressProfile {
            name: raw.name.unwrap_or(stem),
            description: raw.description.unwrap_or_default(),
            path: path.to_path_buf(),
            duration,
            workers: raw.workers.unwrap_or(0),
            seed: raw.seed,
            epoch: Duration::from_millis(raw.epoch_ms.unwrap_or(2000).max(100)),
            switches: raw.switches.into_iter().map(|s| s.into_inner()).collect(),
            op_deadline: Duration::from_millis(raw.deadlines.op_ms.unwrap_or(10_000)),
            max_wait: Duration::from_millis(max_wait_ms.into()),
            fence_deadline: Duration::from_millis(raw.deadlines.fence_ms.unwrap_or(5000)),
            grace: Duration::from_millis(raw.oracles.grace_ms.unwrap_or(200)),
            stop_on_finding: raw.oracles.stop_on_finding.unwrap_or(false),
            targets,
        })
    }

    /// Which target worker `w` of `n` runs: targets get workers in proportion to their share.
    pub fn target_of(&self, w: u32) -> &Target {
        let total: u32 = self.targets.iter().map(|t| t.workers).sum();
        let mut r = w % total.max(1);
        for t in &self.targets {
            if r < t.workers {
                return t;
            }
            r -= t.workers;
        }
        &self.targets[0]
    }
}
