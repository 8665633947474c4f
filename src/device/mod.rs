//! Device discovery: V4L2 and media nodes, their capabilities and formats, and the kernel's debug
//! state (lockdep, KCOV, tracefs events, hung-task detection).
pub mod debug_state;
pub mod render;

use crate::program::Node;
use crate::uapi::ioctl;
use crate::uapi::v4l2::*;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use debug_state::DebugState;

/// Frame sizes a format supports.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FrameSizes {
    /// A list of sizes.
    Discrete {
        /// (width, height) pairs.
        sizes: Vec<(u32, u32)>,
    },
    /// A range with steps.
    Stepwise {
        /// (min, max, step).
        width: (u32, u32, u32),
        /// (min, max, step).
        height: (u32, u32, u32),
    },
    /// The driver does not enumerate sizes.
    Unknown,
}

/// A format of one queue.
#[derive(Clone, Debug, Serialize)]
pub struct FormatInfo {
    /// Fourcc as text.
    pub fourcc: String,
    /// Driver's description.
    pub description: String,
    /// Sizes.
    pub sizes: FrameSizes,
}

/// One queue (OUTPUT or CAPTURE) of a node.
#[derive(Clone, Debug, Serialize)]
pub struct QueueInfo {
    /// V4L2 buffer type.
    pub buf_type: u32,
    /// "mmap", "userptr", "dmabuf" as REQBUFS(0) reports them.
    pub memory: Vec<&'static str>,
    /// Supports the request API.
    pub requests: bool,
    /// Supports M2M_HOLD_CAPTURE_BUF.
    pub hold_capture: bool,
    /// Supports REMOVE_BUFS.
    pub remove_bufs: bool,
    /// Formats.
    pub formats: Vec<FormatInfo>,
}

/// A video node.
#[derive(Clone, Debug, Serialize)]
pub struct VideoNode {
    /// `/dev/videoN`.
    pub path: PathBuf,
    /// The video device's name (sysfs).
    pub name: String,
    /// QUERYCAP driver.
    pub driver: String,
    /// QUERYCAP card.
    pub card: String,
    /// QUERYCAP bus_info.
    pub bus_info: String,
    /// Device caps.
    pub device_caps: u32,
    /// An m2m node (single or multi-planar).
    pub m2m: bool,
    /// Multi-planar API.
    pub mplane: bool,
    /// Its media controller node, if any.
    pub media: Option<PathBuf>,
    /// OUTPUT and CAPTURE queues (m2m nodes only).
    pub queues: Vec<QueueInfo>,
}

fn open_node(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// QUERYCAP on an open node.
pub fn querycap(fd: i32) -> nix::Result<v4l2_capability> {
    let mut cap = v4l2_capability::default();
    ioctl::querycap(fd, &mut cap)?;
    Ok(cap)
}

/// The caps that describe the node (device_caps where the driver reports them).
pub fn node_caps(cap: &v4l2_capability) -> u32 {
    if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    }
}

/// The media node of a video node, from sysfs (`/sys/class/video4linux/videoN/device/mediaM`).
pub fn media_of(video: &Path) -> Option<PathBuf> {
    let name = video.file_name()?.to_str()?;
    let dir = Path::new("/sys/class/video4linux")
        .join(name)
        .join("device");
    let mut found: Vec<String> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("media"))
        .collect();
    found.sort();
    found.first().map(|m| Path::new("/dev").join(m))
}

fn sysfs_name(video: &Path) -> String {
    video
        .file_name()
        .and_then(|n| {
            fs::read_to_string(Path::new("/sys/class/video4linux").join(n).join("name")).ok()
        })
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn formats(fd: i32, buf_type: u32) -> Vec<FormatInfo> {
    let mut out = Vec::new();
    for index in 0..64 {
        let mut d = v4l2_fmtdesc {
            index,
            type_: buf_type,
            ..Default::default()
        };
        if ioctl::enum_fmt(fd, &mut d).is_err() {
            break;
        }
        let mut sizes = Vec::new();
        let mut kind = FrameSizes::Unknown;
        for si in 0..64 {
            let mut fs = v4l2_frmsizeenum {
                index: si,
                pixel_format: d.pixelformat,
                ..Default::default()
            };
            if ioctl::enum_framesizes(fd, &mut fs).is_err() {
                break;
            }
            let s = fs.stepwise;
            if fs.type_ == V4L2_FRMSIZE_TYPE_DISCRETE {
                sizes.push((s.min_width, s.max_width));
            } else {
                kind = FrameSizes::Stepwise {
                    width: (s.min_width, s.max_width, s.step_width),
                    height: (s.min_height, s.max_height, s.step_height),
                };
                break;
            }
        }
        if !sizes.is_empty() {
            kind = FrameSizes::Discrete { sizes };
        }
        out.push(FormatInfo {
            fourcc: fourcc_str(d.pixelformat),
            description: cstr(&d.description),
            sizes: kind,
        });
    }
    out
}

fn queue_info(fd: i32, buf_type: u32) -> QueueInfo {
    // REQBUFS(0) on a fresh fd allocates nothing and reports the queue's capabilities.
    let mut rb = v4l2_requestbuffers {
        count: 0,
        type_: buf_type,
        memory: V4L2_MEMORY_MMAP,
        ..Default::default()
    };
    let caps = ioctl::reqbufs(fd, &mut rb)
        .map(|_| rb.capabilities)
        .unwrap_or(0);
    let memory = [
        (V4L2_BUF_CAP_SUPPORTS_MMAP, "mmap"),
        (V4L2_BUF_CAP_SUPPORTS_USERPTR, "userptr"),
        (V4L2_BUF_CAP_SUPPORTS_DMABUF, "dmabuf"),
    ]
    .iter()
    .filter(|(bit, _)| caps & bit != 0)
    .map(|(_, n)| *n)
    .collect();
    QueueInfo {
        buf_type,
        memory,
        requests: caps & V4L2_BUF_CAP_SUPPORTS_REQUESTS != 0,
        hold_capture: caps & V4L2_BUF_CAP_SUPPORTS_M2M_HOLD_CAPTURE_BUF != 0,
        remove_bufs: caps & V4L2_BUF_CAP_SUPPORTS_REMOVE_BUFS != 0,
        formats: formats(fd, buf_type),
    }
}

/// Probe one video node.
pub fn probe_node(path: &Path) -> Result<VideoNode> {
    let f = open_node(path)?;
    let fd = f.as_raw_fd();
    let cap = querycap(fd).with_context(|| format!("VIDIOC_QUERYCAP on {}", path.display()))?;
    let caps = node_caps(&cap);
    let mplane = caps & V4L2_CAP_VIDEO_M2M_MPLANE != 0;
    let m2m = mplane || caps & V4L2_CAP_VIDEO_M2M != 0;
    let queues = if m2m {
        let (o, c) = buf_types(mplane);
        vec![queue_info(fd, o), queue_info(fd, c)]
    } else {
        Vec::new()
    };
    Ok(VideoNode {
        path: path.to_path_buf(),
        name: sysfs_name(path),
        driver: cstr(&cap.driver),
        card: cstr(&cap.card),
        bus_info: cstr(&cap.bus_info),
        device_caps: caps,
        m2m,
        mplane,
        media: media_of(path),
        queues,
    })
}

/// (OUTPUT, CAPTURE) buffer types for the node's API.
pub fn buf_types(mplane: bool) -> (u32, u32) {
    if mplane {
        (
            V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE,
            V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
        )
    } else {
        (V4L2_BUF_TYPE_VIDEO_OUTPUT, V4L2_BUF_TYPE_VIDEO_CAPTURE)
    }
}

/// `/dev/<prefix>N` paths, sorted by N. The kernel's names are read from sysfs (the
/// video4linux class or the media bus: a handful of entries), not from `/dev`, which on a
/// machine with legacy ptys holds hundreds (about 600 in the lab, where listing it took
/// 10-16 ms under TCG: more than the node search's opens and QUERYCAPs together); `/dev` is
/// listed only when sysfs is not mounted.
pub fn dev_paths(prefix: &str) -> Vec<PathBuf> {
    let class = match prefix {
        "media" => "/sys/bus/media/devices",
        _ => "/sys/class/video4linux",
    };
    let mut v = numbered(class, prefix)
        .or_else(|| numbered("/dev", prefix))
        .unwrap_or_default();
    v.sort();
    v.into_iter()
        .map(|(_, name)| Path::new("/dev").join(name))
        .collect()
}

/// The entries of `dir` named `<prefix>N`, with N; None if `dir` cannot be read.
fn numbered(dir: &str, prefix: &str) -> Option<Vec<(u32, String)>> {
    let rd = fs::read_dir(dir).ok()?;
    Some(
        rd.filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            Some((n, name))
        })
        .collect(),
    )
}

/// Every video node that can be probed, and the errors of those that cannot.
pub fn video_nodes() -> (Vec<VideoNode>, Vec<String>) {
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for p in dev_paths("video") {
        match probe_node(&p) {
            Ok(n) => ok.push(n),
            Err(e) => errs.push(format!("{:#}", e)),
        }
    }
    (ok, errs)
}

/// A media controller node.
#[derive(Clone, Debug, Serialize)]
pub struct MediaNode {
    /// `/dev/mediaN`.
    pub path: PathBuf,
    /// MEDIA_IOC_DEVICE_INFO driver.
    pub driver: String,
    /// Model.
    pub model: String,
    /// Bus info.
    pub bus_info: String,
}

/// Every media node that answers MEDIA_IOC_DEVICE_INFO.
pub fn media_nodes() -> Vec<MediaNode> {
    dev_paths("media")
        .into_iter()
        .filter_map(|p| {
            let f = open_node(&p).ok()?;
            let mut info = crate::uapi::media::media_device_info::default();
            ioctl::media_device_info(f.as_raw_fd(), &mut info).ok()?;
            Some(MediaNode {
                path: p,
                driver: cstr(&info.driver),
                model: cstr(&info.model),
                bus_info: cstr(&info.bus_info),
            })
        })
        .collect()
}

/// The environment variable that overrides discovery for a node selector.
pub fn override_var(selector: &str) -> String {
    format!(
        "M2MFUZZ_NODE_{}",
        selector.to_uppercase().replace(['-', ':'], "_")
    )
}

/// Use `path` for the node selector (`vim2m`, `vicodec:stateless-decoder`) from now on in this
/// process, as `--node` and profile `node =` ask. Kept in the process's own table, not the
/// environment: `setenv` races every `getenv` of any other thread (a kmsg reader, a worker).
pub fn set_node_override(selector: &str, path: impl AsRef<std::ffi::OsStr>) {
    overrides()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(selector.to_string(), PathBuf::from(path.as_ref()));
}

/// Selector → path set by [`set_node_override`].
fn overrides() -> &'static std::sync::Mutex<std::collections::HashMap<String, PathBuf>> {
    static O: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        std::sync::OnceLock::new();
    O.get_or_init(Default::default)
}

/// Resolved selectors of this process: every program's `open` resolves its node, and a scan opens
/// every video node (an m2m open allocates a context; visl's allocates a test pattern generator),
/// which would otherwise cost each program more than its ioctls.
fn resolved() -> &'static std::sync::Mutex<std::collections::HashMap<String, Resolved>> {
    static R: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Resolved>>> =
        std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

/// A found node, and the fd the search opened it with, kept for the selector's first `open`
/// (as the C reproducer's search keeps its fd): an m2m open and close are milliseconds of
/// context setup and teardown under the lab's TCG.
struct Resolved {
    path: PathBuf,
    spare: Option<File>,
}

/// The fd the search for `node` opened (read-write, non-blocking, close-on-exec), if no `open`
/// has taken it yet.
pub fn take_spare(node: &Node) -> Option<File> {
    let Node::Driver(sel) = node else { return None };
    resolved()
        .lock()
        .unwrap()
        .get_mut(sel)
        .and_then(|r| r.spare.take())
}

/// What resolving needs of an m2m node: QUERYCAP and the sysfs name, no format enumeration.
struct BriefNode {
    path: PathBuf,
    driver: String,
    name: String,
}

/// The first m2m node in `/dev/video*` order with this driver (and video name, when given),
/// probing one by one (as the C reproducer's `open_node` does: every open of an m2m node sets up
/// a context in the driver); else every m2m node seen, for the error message. The sysfs name is
/// read only when it decides, or for that message (reading it for every node showed in the
/// harness overhead benchmark's start-up cost).
fn find_m2m_node(driver: &str, name: Option<&str>) -> Result<(PathBuf, File), Vec<BriefNode>> {
    let mut seen = Vec::new();
    for path in dev_paths("video") {
        let Ok(f) = open_node(&path) else { continue };
        let Ok(cap) = querycap(f.as_raw_fd()) else {
            continue;
        };
        if node_caps(&cap) & (V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_VIDEO_M2M) == 0 {
            continue;
        }
        let d = cstr(&cap.driver);
        if d == driver && name.is_none_or(|w| sysfs_name(&path) == w) {
            return Ok((path, f));
        }
        seen.push((path, d));
    }
    Err(seen
        .into_iter()
        .map(|(path, driver)| BriefNode {
            name: sysfs_name(&path),
            driver,
            path,
        })
        .collect())
}

/// Resolve an `open node=` selector to a device path. `M2MFUZZ_NODE_<DRIVER>` (driver name upper
/// case, `-`/`:` as `_`) overrides discovery, as `--node` does on the command line.
/// A found node is remembered for the rest of the process.
pub fn resolve(node: &Node) -> Result<PathBuf> {
    let sel = match node {
        Node::Path(p) => return Ok(PathBuf::from(p)),
        Node::Driver(d) => d,
    };
    let set = overrides()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(sel)
        .cloned();
    if let Some(p) = set {
        return Ok(p);
    }
    let var = override_var(sel);
    if let Some(p) = std::env::var_os(&var) {
        return Ok(PathBuf::from(p));
    }
    let (driver, name) = match sel.split_once(':') {
        Some((d, n)) => (d, Some(n)),
        None => (sel.as_str(), None),
    };
    if let Some(r) = resolved().lock().unwrap().get(sel) {
        return Ok(r.path.clone());
    }
    let m2m = match find_m2m_node(driver, name) {
        Ok((path, f)) => {
            let r = Resolved {
                path: path.clone(),
                spare: Some(f),
            };
            resolved().lock().unwrap().insert(sel.clone(), r);
            return Ok(path);
        }
        Err(seen) => seen,
    };
    if m2m.is_empty() {
        bail!(
            "no V4L2 mem2mem node found for `{sel}`: looked at {} /dev/video* node(s), none is m2m. \
             On a board, load the driver; without hardware, run the lab (ci/lab/run-tests.sh)",
            dev_paths("video").len()
        );
    }
    bail!(
        "no m2m node with driver `{sel}`; m2m nodes here: {} (or set {var}=/dev/videoN)",
        m2m.iter()
            .map(|n| format!("{} {}:{}", n.path.display(), n.driver, n.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_keeps_only_prefix_and_number_names_and_none_for_a_missing_dir() {
        let dir = std::env::temp_dir().join(format!("m2mfuzz-numbered-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for n in [
            "video10",
            "video2",
            "video0",
            "vbi0",
            "videox",
            "v4l-subdev0",
        ] {
            fs::write(dir.join(n), "").unwrap();
        }
        let mut v = numbered(dir.to_str().unwrap(), "video").unwrap();
        v.sort();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            v,
            [
                (0, "video0".into()),
                (2, "video2".into()),
                (10, "video10".into())
            ]
        );
        assert_eq!(numbered(dir.to_str().unwrap(), "video"), None);
    }
}

#[cfg(test)]
mod override_tests {
    use super::*;

    #[test]
    fn a_node_override_is_the_process_s_own_and_leaves_the_environment_alone() {
        let sel = "m2mfuzz-test-driver:node";
        set_node_override(sel, "/dev/video42");
        assert_eq!(
            resolve(&crate::program::Node::Driver(sel.into())).unwrap(),
            PathBuf::from("/dev/video42")
        );
        // setenv in a threaded process races every getenv: the override must not be one.
        assert_eq!(std::env::var_os(override_var(sel)), None);
    }
}
