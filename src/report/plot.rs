//! PNG plots of a stress run over its time, for the report: jobs per second, release-fence
//! publish-to-signal latency, and findings, from `epochs.jsonl` and the findings alone.
//!
//! Drawn with plotters' pure-Rust bitmap backend and ab_glyph text, because the binary is also
//! built statically for the lab's guests: no fontconfig or freetype. The font is read at run time
//! from a system path (none is shipped); without one the plots are drawn all the same, without
//! text, and [`Plots::font`] says so.
use crate::stress::store::FindingMeta;
use crate::stress::EpochStats;
use anyhow::{Context, Result};
use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Width of each plot, in pixels.
pub const WIDTH: u32 = 1000;
/// Height of each plot, in pixels.
pub const HEIGHT: u32 = 360;

/// Where a font for the plots' text is looked for, in order, after `$M2MFUZZ_FONT` (a TrueType
/// file; set and empty: no text): DejaVu Sans (Debian's fonts-dejavu-core, then other
/// distributions' paths), Liberation Sans.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// One plot: its file and what it shows.
#[derive(Clone, Debug)]
pub struct Plot {
    /// The PNG.
    pub path: PathBuf,
    /// Alt text: what it shows.
    pub alt: &'static str,
    /// What each colour is, for a reader of a plot drawn without text.
    pub key: &'static str,
}

/// The plots of one run, as [`render`] drew them.
#[derive(Clone, Debug)]
pub struct Plots {
    /// Jobs per second, latency, findings.
    pub plots: Vec<Plot>,
    /// The font of their text; none: no font was found and the plots have no text.
    pub font: Option<&'static Path>,
    /// The time axis's unit (`seconds`, `minutes`, `hours`), for a reader of plots drawn
    /// without text.
    pub x_unit: &'static str,
    /// The time axis's end, in that unit.
    pub x_end: f64,
}

/// The font, found and registered with plotters on first use. plotters keeps fonts for the
/// process's life and wants `'static` bytes, so the file is read once and kept.
pub fn font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var_os("M2MFUZZ_FONT").map(PathBuf::from);
        if env.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return None;
        }
        env.into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .find(|p| {
                let Ok(bytes) = std::fs::read(p) else {
                    return false;
                };
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
    })
    .as_deref()
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const GREY: RGBColor = RGBColor(127, 127, 127);

/// A finding kind's marker colour.
fn kind_colour(kind: &str) -> RGBColor {
    match kind {
        "hang" => RED,
        "leaked-fence" => ORANGE,
        "splat" => PURPLE,
        "stale-read" => GREEN,
        "memory-fault" => BLUE,
        _ => GREY,
    }
}

/// A number for an axis label: whole when it is, else with one decimal (2.5 min, not 2 min).
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The time axis, in the unit that suits the run's length (an overnight run in hours), so its
/// ticks fall on whole units.
struct TimeAxis {
    /// Seconds per unit.
    per: f64,
    /// The unit's name.
    unit: &'static str,
    /// The run's length in that unit: the axis's end.
    end: f64,
}

impl TimeAxis {
    fn new(duration_s: f64) -> TimeAxis {
        let (per, unit) = if duration_s >= 3.0 * 3600.0 {
            (3600.0, "hours")
        } else if duration_s >= 600.0 {
            (60.0, "minutes")
        } else {
            (1.0, "seconds")
        };
        TimeAxis {
            per,
            unit,
            end: duration_s / per,
        }
    }

    /// Seconds since the run's start on this axis.
    fn at(&self, s: f64) -> f64 {
        s / self.per
    }
}

/// Milliseconds on the log axis, with as many decimals as small values need.
fn ms_label(v: &f64) -> String {
    match *v {
        v if v >= 10.0 => format!("{v:.0}"),
        v if v >= 1.0 => number(v),
        v if v >= 0.01 => format!("{v:.2}"),
        v => format!("{v:.3}"),
    }
}

/// A count on the y axis: whole numbers only (a half finding is no label).
fn count_label(v: &f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// How the text of one plot is drawn (or not).
struct Text {
    on: bool,
}

impl Text {
    fn style(&self, size: u32) -> TextStyle<'static> {
        let s = ("sans-serif", size).into_text_style(&(WIDTH, HEIGHT));
        // plotters skips text of a transparent colour before it looks for a font.
        if self.on {
            s
        } else {
            s.color(&TRANSPARENT)
        }
    }
}

/// The epochs that are a span of the run (not the final drain, nor what `--recover` added).
fn spans(epochs: &[EpochStats]) -> impl Iterator<Item = &EpochStats> {
    epochs
        .iter()
        .filter(|e| !e.final_drain && !e.recovered && e.end_s > e.start_s)
}

/// Draw the three plots into `dir` (created): `jobs.png`, `latency.png`, `findings.png`. With
/// `text` false, or no font found, they are drawn without text.
pub fn render(
    dir: &Path,
    epochs: &[EpochStats],
    findings: &[FindingMeta],
    text: bool,
) -> Result<Plots> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let font = if text { font() } else { None };
    let t = Text { on: font.is_some() };
    let x = TimeAxis::new(
        epochs
            .iter()
            .map(|e| e.end_s)
            .chain(findings.iter().map(|f| f.first_seen_s))
            .fold(1.0, f64::max),
    );
    let plots = vec![
        Plot {
            path: dir.join("jobs.png"),
            alt: "jobs per second",
            key: "blue: CAPTURE buffers dequeued per second (one per finished m2m job), \
                  orange: release fences signalled per second, each over an epoch",
        },
        Plot {
            path: dir.join("latency.png"),
            alt: "release fence publish-to-signal latency",
            key: "per epoch, ms on a log scale: blue mean, green median, orange p99, red dots max",
        },
        Plot {
            path: dir.join("findings.png"),
            alt: "findings over time",
            key: "the count of distinct findings, a dot where each was first seen \
                  (red hang, orange leaked-fence, purple splat, green stale-read, \
                  blue memory-fault, grey other)",
        },
    ];
    jobs(&plots[0].path, epochs, &x, &t)
        .with_context(|| format!("draw {}", plots[0].path.display()))?;
    latency(&plots[1].path, epochs, &x, &t)
        .with_context(|| format!("draw {}", plots[1].path.display()))?;
    findings_plot(&plots[2].path, findings, &x, &t)
        .with_context(|| format!("draw {}", plots[2].path.display()))?;
    Ok(Plots {
        plots,
        font,
        x_unit: x.unit,
        x_end: x.end,
    })
}

/// A chart's frame: caption, margins, label areas (text areas only when there is text).
fn frame<'a, 'p>(
    area: &'a DrawingArea<BitMapBackend<'p>, Shift>,
    caption: &str,
    t: &Text,
) -> ChartBuilder<'a, 'static, BitMapBackend<'p>> {
    let mut b = ChartBuilder::on(area);
    b.margin(12);
    if t.on {
        b.caption(caption, t.style(20))
            .x_label_area_size(40)
            .y_label_area_size(64);
    } else {
        b.x_label_area_size(8).y_label_area_size(8);
    }
    b
}

/// Mesh with time on x and `y_desc` on y, its labels written by `y_label`.
fn mesh<Y>(
    c: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    x: &TimeAxis,
    y_desc: &str,
    y_label: &dyn Fn(&Y::ValueType) -> String,
    t: &Text,
) -> Result<()>
where
    Y: Ranged + ValueFormatter<<Y as Ranged>::ValueType>,
    Y::ValueType: std::fmt::Debug,
{
    let x_desc = format!("{} since the run's start", x.unit);
    let mut m = c.configure_mesh();
    m.x_label_formatter(&|v| number(*v))
        .y_label_formatter(y_label)
        .label_style(t.style(14))
        .light_line_style(RGBColor(235, 235, 235));
    if t.on {
        m.x_desc(x_desc).y_desc(y_desc).axis_desc_style(t.style(15));
    }
    m.draw().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The legend, when there is text to write it in.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    c: &mut ChartContext<'a, DB, CT>,
    t: &Text,
) -> Result<()> {
    if t.on {
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(t.style(14))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

fn jobs(path: &Path, epochs: &[EpochStats], x: &TimeAxis, t: &Text) -> Result<()> {
    // A rate per epoch, at the epoch's end: what the run did in that span.
    let rate = |n: fn(&EpochStats) -> u64| -> Vec<(f64, f64)> {
        spans(epochs)
            .map(|e| (x.at(e.end_s), n(e) as f64 / (e.end_s - e.start_s)))
            .collect()
    };
    let frames = rate(|e| e.frames);
    let fences = rate(|e| e.fences_signalled);
    let top = frames
        .iter()
        .chain(&fences)
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.1;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut c = frame(&root, "Jobs per second (per epoch)", t)
        .build_cartesian_2d(0.0..x.end, 0.0..top)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    mesh(&mut c, x, "per second", &|v| number(*v), t)?;
    for (points, colour, label) in [
        (
            &frames,
            BLUE,
            "CAPTURE buffers dequeued/s (finished m2m jobs)",
        ),
        (&fences, ORANGE, "release fences signalled/s"),
    ] {
        c.draw_series(LineSeries::new(
            points.iter().copied(),
            colour.stroke_width(2),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    legend(&mut c, t)?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))
}

fn latency(path: &Path, epochs: &[EpochStats], x: &TimeAxis, t: &Text) -> Result<()> {
    let measured: Vec<&EpochStats> = epochs
        .iter()
        .filter(|e| e.fence_latency.count > 0)
        .collect();
    // A log scale: a slow epoch's max is orders of magnitude above the usual mean, and both
    // should be read. Zero (same trace tick) is drawn at the floor.
    const FLOOR: f64 = 1e-3;
    let series = |f: fn(&EpochStats) -> f64| -> Vec<(f64, f64)> {
        measured
            .iter()
            .map(|e| (x.at(e.end_s), f(e).max(FLOOR)))
            .collect()
    };
    let max = series(|e| e.fence_latency.max_ms);
    let lines = [
        (series(|e| e.fence_latency.p99_ms), ORANGE, "p99"),
        (series(|e| e.fence_latency.p50_ms), GREEN, "median"),
        (series(|e| e.fence_latency.mean_ms), BLUE, "mean"),
    ];
    let all = || {
        lines
            .iter()
            .flat_map(|l| l.0.iter())
            .chain(&max)
            .map(|p| p.1)
    };
    let lo = all().fold(f64::INFINITY, f64::min);
    let hi = all().fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() {
        (lo / 2.0, (hi * 2.0).max(lo * 10.0))
    } else {
        (0.01, 100.0)
    };
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let caption = if measured.is_empty() {
        "Release fence publish-to-signal latency: none recorded (no tracefs?)"
    } else {
        "Release fence publish-to-signal latency (per epoch)"
    };
    let mut c = frame(&root, caption, t)
        .build_cartesian_2d(0.0..x.end, (lo..hi).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    mesh(&mut c, x, "ms (log scale)", &ms_label, t)?;
    for (points, colour, label) in lines {
        c.draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    // The max as dots over the lines: with a hundred fences an epoch, p99 is often the max.
    c.draw_series(max.iter().map(|&p| Circle::new(p, 3, RED.filled())))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label("max")
        .legend(|(x, y)| Circle::new((x + 9, y), 3, RED.filled()));
    legend(&mut c, t)?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))
}

fn findings_plot(path: &Path, findings: &[FindingMeta], x: &TimeAxis, t: &Text) -> Result<()> {
    let mut seen: Vec<&FindingMeta> = findings.iter().collect();
    seen.sort_by(|a, b| a.first_seen_s.total_cmp(&b.first_seen_s));
    // A step up at each finding's first sighting, flat to the run's end.
    let mut steps = vec![(0.0, 0.0)];
    for (i, f) in seen.iter().enumerate() {
        steps.push((x.at(f.first_seen_s), i as f64));
        steps.push((x.at(f.first_seen_s), i as f64 + 1.0));
    }
    steps.push((x.end, seen.len() as f64));
    let top = (seen.len() as f64 * 1.15).max(1.0) + 0.5;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let caption = format!("Distinct findings: {}", seen.len());
    let mut c = frame(&root, &caption, t)
        .build_cartesian_2d(0.0..x.end, 0.0..top)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    mesh(&mut c, x, "distinct findings", &count_label, t)?;
    c.draw_series(LineSeries::new(steps, BLACK.stroke_width(2)))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label("distinct findings so far")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    // One marker series per kind, so the legend names the kinds this run found.
    let mut kinds: Vec<&str> = seen.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let colour = kind_colour(kind);
        let dots = seen
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == kind)
            .map(|(i, f)| Circle::new((x.at(f.first_seen_s), i as f64 + 1.0), 5, colour.filled()));
        c.draw_series(dots)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(kind.to_string())
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, colour.filled()));
    }
    legend(&mut c, t)?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))
}
