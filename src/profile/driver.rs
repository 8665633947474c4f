//! Built-in profiles of the target drivers and their lab stand-ins, from the drivers' source
//! (Linux 6.12: drivers/media/platform/{rockchip/rga,verisilicon}, drivers/media/test-drivers).
use crate::program::{FourCc, Memory};

/// Whether a driver uses the media request API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requests {
    /// No request support.
    No,
    /// Requests work but are not needed.
    Optional,
    /// OUTPUT buffers must be queued in requests.
    Required,
}

/// An integer control a program may set.
#[derive(Clone, Copy, Debug)]
pub struct Control {
    /// Control id.
    pub id: u32,
    /// Name, for program comments.
    pub name: &'static str,
    /// Valid range.
    pub min: i64,
    /// Valid range.
    pub max: i64,
    /// The value is how long each job takes (vim2m's TRANS_TIME_MSEC). The kernel clamps an
    /// out-of-range integer into the range, so a corrupted value above it makes every job of
    /// the node take the maximum (10 s on vim2m) and stalls every context on it: corrupted
    /// values of such a control go below the range (clamped to the minimum) or to another id.
    pub job_time: bool,
}

/// What m2mfuzz knows about one driver's m2m node.
#[derive(Clone, Copy, Debug)]
pub struct DriverProfile {
    /// Profile name (`--driver`, `# driver:` header).
    pub name: &'static str,
    /// QUERYCAP `driver`.
    pub driver: &'static str,
    /// The video device's name (sysfs `name`) where a driver has several nodes.
    pub node_name: Option<&'static str>,
    /// Multi-planar API.
    pub mplane: bool,
    /// OUTPUT formats.
    pub out_formats: &'static [FourCc],
    /// CAPTURE formats.
    pub cap_formats: &'static [FourCc],
    /// Width range.
    pub width: (u32, u32),
    /// Height range.
    pub height: (u32, u32),
    /// Default (width, height) on both queues.
    pub default_size: (u32, u32),
    /// Memory types of the queues.
    pub memories: &'static [Memory],
    /// Request API use.
    pub requests: Requests,
    /// Integer controls worth setting.
    pub controls: &'static [Control],
    /// Supports V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF.
    pub hold_capture: bool,
    /// True for the lab's test drivers.
    pub lab: bool,
    /// What makes a context ready to run a job (the driver's `job_ready`, or its absence).
    pub job_ready: JobReady,
}

/// When the m2m core runs a context's job: both queues streaming, a buffer ready on each, and
/// what the driver's `job_ready` asks beyond that (Linux 6.12 v4l2-mem2mem.c
/// `__v4l2_m2m_try_queue`). The stale-read oracle needs it to know, from the program alone,
/// that a job has started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobReady {
    /// No `job_ready`: one buffer on each queue (rga, hantro, visl).
    Buffers,
    /// As many buffers on each queue as this control says, 1 by default (vim2m's
    /// TRANS_NUM_BUFS, its `translen`).
    BuffersPerCtrl(u32),
    /// A `job_ready` that looks at more (vicodec parses the stream): not modelled.
    Unknown,
}

impl DriverProfile {
    /// The node selector `open node=` uses for this profile.
    pub fn node_selector(&self) -> String {
        match self.node_name {
            Some(n) => format!("{}:{}", self.driver, n),
            None => self.driver.to_string(),
        }
    }
}

const MMAP_DMABUF: &[Memory] = &[Memory::Mmap, Memory::Dmabuf];
const ALL_MEM: &[Memory] = &[Memory::Mmap, Memory::Userptr, Memory::Dmabuf];

/// vim2m (vim2m.c): RGB in and out, YUYV/Bayer out only; 32..640 x 32..480; async completion.
pub const VIM2M: DriverProfile = DriverProfile {
    name: "vim2m",
    driver: "vim2m",
    node_name: None,
    mplane: false,
    out_formats: &[
        FourCc::new(b"RGBP"),
        FourCc::new(b"RGBR"),
        FourCc::new(b"RGB3"),
        FourCc::new(b"BGR3"),
    ],
    cap_formats: &[
        FourCc::new(b"RGBP"),
        FourCc::new(b"RGBR"),
        FourCc::new(b"RGB3"),
        FourCc::new(b"BGR3"),
        FourCc::new(b"YUYV"),
        FourCc::new(b"BA81"),
    ],
    width: (32, 640),
    height: (32, 480),
    default_size: (640, 480),
    memories: ALL_MEM,
    requests: Requests::Optional,
    controls: &[
        Control {
            id: 0x0098_1900,
            name: "TRANS_TIME_MSEC",
            min: 1,
            max: 10001,
            job_time: true,
        },
        Control {
            id: 0x0098_1901,
            name: "TRANS_NUM_BUFS",
            min: 1,
            max: 32,
            job_time: false,
        },
        Control {
            id: 0x0098_0914,
            name: "HFLIP",
            min: 0,
            max: 1,
            job_time: false,
        },
        Control {
            id: 0x0098_0915,
            name: "VFLIP",
            min: 0,
            max: 1,
            job_time: false,
        },
    ],
    hold_capture: false,
    lab: true,
    job_ready: JobReady::BuffersPerCtrl(0x0098_1901),
};

/// visl (visl-video.c): stateless decoder stand-in; MPLANE, one plane; sync completion.
pub const VISL: DriverProfile = DriverProfile {
    name: "visl",
    driver: "visl",
    node_name: None,
    mplane: true,
    out_formats: &[
        FourCc::new(b"SFWH"),
        FourCc::new(b"MG2S"),
        FourCc::new(b"VP8F"),
        FourCc::new(b"VP9F"),
        FourCc::new(b"S264"),
        FourCc::new(b"S265"),
        FourCc::new(b"AV1F"),
    ],
    cap_formats: &[FourCc::new(b"NV12"), FourCc::new(b"YU12")],
    width: (640, 4096),
    height: (360, 2160),
    default_size: (640, 360),
    memories: MMAP_DMABUF,
    requests: Requests::Optional,
    controls: &[],
    hold_capture: true,
    lab: true,
    job_ready: JobReady::Buffers,
};

/// vicodec stateful encoder: raw in, FWHT out; single-planar unless `vicodec.multiplanar=1`.
pub const VICODEC: DriverProfile = DriverProfile {
    name: "vicodec",
    driver: "vicodec",
    node_name: Some("stateful-encoder"),
    mplane: false,
    out_formats: &[
        FourCc::new(b"YU12"),
        FourCc::new(b"NV12"),
        FourCc::new(b"RGB3"),
    ],
    cap_formats: &[FourCc::new(b"FWHT")],
    width: (640, 4096),
    height: (360, 2160),
    default_size: (1280, 720),
    memories: ALL_MEM,
    requests: Requests::No,
    controls: &[],
    hold_capture: false,
    lab: true,
    job_ready: JobReady::Unknown,
};

/// vicodec stateless decoder: requests with FWHT_PARAMS required.
pub const VICODEC_STATELESS: DriverProfile = DriverProfile {
    name: "vicodec-stateless",
    driver: "vicodec",
    node_name: Some("stateless-decoder"),
    mplane: false,
    out_formats: &[FourCc::new(b"SFWH")],
    cap_formats: &[FourCc::new(b"YU12"), FourCc::new(b"NV12")],
    width: (640, 4096),
    height: (360, 2160),
    default_size: (1280, 720),
    memories: ALL_MEM,
    requests: Requests::Required,
    controls: &[],
    hold_capture: false,
    lab: true,
    job_ready: JobReady::Unknown,
};

/// rockchip-rga (rga.c): MPLANE, dma-sg, 34..8192; NV12M is two planes.
pub const RGA: DriverProfile = DriverProfile {
    name: "rga",
    driver: "rockchip-rga",
    node_name: None,
    mplane: true,
    out_formats: &[
        FourCc::new(b"AR24"),
        FourCc::new(b"AB24"),
        FourCc::new(b"XB24"),
        FourCc::new(b"RGB3"),
        FourCc::new(b"BGR3"),
        FourCc::new(b"RGBP"),
        FourCc::new(b"NV12"),
        FourCc::new(b"NM12"),
        FourCc::new(b"NV21"),
        FourCc::new(b"YU12"),
    ],
    cap_formats: &[
        FourCc::new(b"AR24"),
        FourCc::new(b"XB24"),
        FourCc::new(b"RGB3"),
        FourCc::new(b"RGBP"),
        FourCc::new(b"NV12"),
        FourCc::new(b"NM12"),
        FourCc::new(b"YU12"),
    ],
    width: (34, 8192),
    height: (34, 8192),
    default_size: (640, 480),
    memories: ALL_MEM,
    requests: Requests::No,
    controls: &[
        Control {
            id: 0x0098_0914,
            name: "HFLIP",
            min: 0,
            max: 1,
            job_time: false,
        },
        Control {
            id: 0x0098_0915,
            name: "VFLIP",
            min: 0,
            max: 1,
            job_time: false,
        },
        Control {
            id: 0x0098_092a,
            name: "ROTATE",
            min: 0,
            max: 270,
            job_time: false,
        },
    ],
    hold_capture: false,
    lab: false,
    job_ready: JobReady::Buffers,
};

/// hantro-vpu (RK3566/RK3568 G1 decoder): MPLANE, dma-contig, stateless, requests required.
pub const HANTRO: DriverProfile = DriverProfile {
    name: "hantro",
    driver: "hantro-vpu",
    node_name: None,
    mplane: true,
    out_formats: &[
        FourCc::new(b"S264"),
        FourCc::new(b"MG2S"),
        FourCc::new(b"VP8F"),
    ],
    cap_formats: &[FourCc::new(b"NV12")],
    width: (48, 1920),
    height: (48, 1088),
    default_size: (640, 480),
    memories: MMAP_DMABUF,
    requests: Requests::Required,
    controls: &[],
    hold_capture: true,
    lab: false,
    job_ready: JobReady::Buffers,
};

/// Every built-in profile.
pub const ALL: &[DriverProfile] = &[VIM2M, VISL, VICODEC, VICODEC_STATELESS, RGA, HANTRO];

/// A profile by its name (`vim2m`) or QUERYCAP driver name (`rockchip-rga`).
pub fn by_name(name: &str) -> Option<&'static DriverProfile> {
    ALL.iter()
        .find(|p| p.name == name)
        .or_else(|| ALL.iter().find(|p| p.driver == name))
}
