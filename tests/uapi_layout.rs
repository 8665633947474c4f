//! Proves that every uapi struct's size and field offsets, and every ioctl number, equal what the
//! kernel headers give in C, for the architecture this test is compiled for: natively on x86_64,
//! and compiled for aarch64 (the boards) and run under qemu-aarch64-static (`ci/board-build.sh
//! --test`), each against its own architecture's headers and C compiler. The headers are the
//! lab kernel's 6.12 uapi headers when `ci/lab/build-kernel.sh` has installed them for this
//! architecture (`LAB_ARCH=arm64` for aarch64), else the compiler's own (linux-libc-dev).
use m2mfuzz::uapi::dmabuf::*;
use m2mfuzz::uapi::ioctl;
use m2mfuzz::uapi::kcov::*;
use m2mfuzz::uapi::media::*;
use m2mfuzz::uapi::sync_file::*;
use m2mfuzz::uapi::v4l2::*;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

/// One checked fact: a label, the C expression, and Rust's value.
struct Fact {
    label: String,
    c_expr: String,
    rust: u64,
    /// C guard: the fact is checked only where the headers define this macro.
    needs: Option<&'static str>,
}

macro_rules! layout {
    ($out:ident, $needs:expr, $s:ident { $($f:ident $(as $c:ident)?),* $(,)? }) => {
        $out.push(Fact {
            label: format!("sizeof {}", stringify!($s)),
            c_expr: format!("sizeof(struct {})", stringify!($s)),
            rust: size_of::<$s>() as u64,
            needs: $needs,
        });
        $(
            let c_field = layout!(@c $f $(, $c)?);
            $out.push(Fact {
                label: format!("offsetof {}.{}", stringify!($s), c_field),
                c_expr: format!("offsetof(struct {}, {})", stringify!($s), c_field),
                rust: offset_of!($s, $f) as u64,
                needs: $needs,
            });
        )*
    };
    (@c $f:ident) => { stringify!($f) };
    (@c $f:ident, $c:ident) => { stringify!($c) };
}

fn facts() -> Vec<Fact> {
    let mut v = Vec::new();
    layout!(
        v,
        None,
        v4l2_capability {
            driver,
            card,
            bus_info,
            version,
            capabilities,
            device_caps,
            reserved
        }
    );
    layout!(v, None, v4l2_pix_format { width, height, pixelformat, field, bytesperline, sizeimage,
        colorspace, priv_ as priv, flags, ycbcr_enc, quantization, xfer_func });
    layout!(
        v,
        None,
        v4l2_plane_pix_format {
            sizeimage,
            bytesperline,
            reserved
        }
    );
    layout!(
        v,
        None,
        v4l2_pix_format_mplane {
            width,
            height,
            pixelformat,
            field,
            colorspace,
            plane_fmt,
            num_planes,
            flags,
            ycbcr_enc,
            quantization,
            xfer_func,
            reserved
        }
    );
    layout!(v, None, v4l2_format { type_ as type, fmt });
    layout!(v, None, v4l2_requestbuffers { count, type_ as type, memory, capabilities, flags, reserved });
    layout!(
        v,
        None,
        v4l2_create_buffers {
            index,
            count,
            memory,
            format,
            capabilities,
            flags
        }
    );
    layout!(
        v,
        Some("VIDIOC_REMOVE_BUFS"),
        v4l2_create_buffers {
            max_num_buffers,
            reserved
        }
    );
    layout!(v, Some("VIDIOC_REMOVE_BUFS"), v4l2_remove_buffers { index, count, type_ as type, reserved });
    layout!(v, None, v4l2_timecode { type_ as type, flags, frames, seconds, minutes, hours, userbits });
    layout!(
        v,
        None,
        v4l2_plane {
            bytesused,
            length,
            m,
            data_offset,
            reserved
        }
    );
    layout!(v, None, v4l2_buffer { index, type_ as type, bytesused, flags, field, timestamp, timecode,
        sequence, memory, m, length, reserved2, request_fd });
    layout!(v, None, v4l2_exportbuffer { type_ as type, index, plane, flags, fd, reserved });
    layout!(v, None, v4l2_fmtdesc { index, type_ as type, flags, description, pixelformat, mbus_code, reserved });
    layout!(v, None, v4l2_frmsizeenum { index, pixel_format, type_ as type, stepwise, reserved });
    layout!(
        v,
        None,
        v4l2_frmsize_stepwise {
            min_width,
            max_width,
            step_width,
            min_height,
            max_height,
            step_height
        }
    );
    layout!(v, None, v4l2_control { id, value });
    layout!(
        v,
        None,
        v4l2_ext_control {
            id,
            size,
            reserved2,
            value64
        }
    );
    layout!(
        v,
        None,
        v4l2_ext_controls {
            which,
            count,
            error_idx,
            request_fd,
            reserved,
            controls
        }
    );
    layout!(
        v,
        None,
        media_device_info {
            driver,
            model,
            serial,
            bus_info,
            media_version,
            hw_revision,
            driver_version,
            reserved
        }
    );
    layout!(v, None, dma_buf_sync { flags });
    layout!(v, None, dma_buf_export_sync_file { flags, fd });
    layout!(v, None, dma_buf_import_sync_file { flags, fd });
    layout!(
        v,
        None,
        sync_merge_data {
            name,
            fd2,
            fence,
            flags,
            pad
        }
    );
    layout!(
        v,
        None,
        sync_fence_info {
            obj_name,
            driver_name,
            status,
            flags,
            timestamp_ns
        }
    );
    layout!(
        v,
        None,
        sync_file_info {
            name,
            status,
            flags,
            num_fences,
            pad,
            sync_fence_info
        }
    );
    layout!(v, None, sw_sync_create_fence_data { value, name, fence });
    layout!(
        v,
        None,
        kcov_remote_arg {
            trace_mode,
            area_size,
            num_handles,
            common_handle
        }
    );
    for &(name, num) in ioctl::ALL.iter().chain(m2mfuzz::uapi::kcov::ALL) {
        v.push(Fact {
            label: name.to_string(),
            c_expr: name.to_string(),
            #[allow(clippy::useless_conversion)] // the request type is 32-bit on 32-bit targets
            rust: num.into(),
            needs: (name == "VIDIOC_REMOVE_BUFS").then_some("VIDIOC_REMOVE_BUFS"),
        });
    }
    v
}

/// Not in any public header: copied from drivers/dma-buf/sw_sync.c, so only the C ABI rules
/// (not the transcription) are checked for these.
const SW_SYNC_DECLS: &str = r#"
struct sw_sync_create_fence_data { __u32 value; char name[32]; __s32 fence; };
#define SW_SYNC_IOC_CREATE_FENCE _IOWR('W', 0, struct sw_sync_create_fence_data)
#define SW_SYNC_IOC_INC _IOW('W', 1, __u32)
"#;

/// C source whose array `m2m_facts` holds every fact's value (or ~0 where a guard is unmet).
fn c_source(facts: &[Fact]) -> String {
    let mut s = String::from(
        "#include <stddef.h>\n#include <linux/videodev2.h>\n\
         #include <linux/media.h>\n#include <linux/dma-buf.h>\n#include <linux/kcov.h>\n#include <linux/sync_file.h>\n",
    );
    s += SW_SYNC_DECLS;
    s += "const unsigned long long m2m_facts[] = {\n";
    for f in facts {
        match f.needs {
            Some(m) => s += &format!("#ifdef {m}\n  {},\n#else\n  ~0ULL,\n#endif\n", f.c_expr),
            None => s += &format!("  {},\n", f.c_expr),
        }
    }
    s += "};\n";
    s
}

/// Debian's names for this architecture: the GNU triple's first part and the kernel's ARCH.
const ARCH: &str = std::env::consts::ARCH;
fn kernel_arch() -> &'static str {
    match ARCH {
        "aarch64" => "arm64",
        a => a,
    }
}

/// The lab kernel's 6.12 uapi headers for this architecture (`build-kernel.sh` links them as
/// `headers` for x86_64, `headers-arm64` for arm64), if present.
fn lab_headers() -> Option<PathBuf> {
    let cache = std::env::var_os("M2MFUZZ_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/m2mfuzz-lab"))
        })?;
    let link = match kernel_arch() {
        "x86_64" => "headers".to_string(),
        a => format!("headers-{a}"),
    };
    let p = cache.join(link).join("include");
    p.join("linux/videodev2.h").exists().then_some(p)
}

/// A C compiler for this architecture: `M2MFUZZ_LAYOUT_CC`, else Debian's `<arch>-linux-gnu-gcc`
/// (the cross compiler, or the native one under that name), else `cc`: the first whose
/// `-dumpmachine` names this architecture. Under qemu-user this test is an aarch64 process on an
/// x86_64 machine, where `cc` is x86_64's, so the compiler's own target is what decides.
fn target_cc() -> Result<String, String> {
    let mut tried = Vec::new();
    let candidates = std::env::var("M2MFUZZ_LAYOUT_CC")
        .into_iter()
        .chain([format!("{ARCH}-linux-gnu-gcc"), "cc".to_string()]);
    for cc in candidates {
        match Command::new(&cc).arg("-dumpmachine").output() {
            Ok(o) if o.status.success() => {
                let machine = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if machine.starts_with(&format!("{ARCH}-")) {
                    return Ok(cc);
                }
                tried.push(format!("{cc} (targets {machine})"));
            }
            _ => tried.push(format!("{cc} (not found)")),
        }
    }
    Err(format!(
        "no C compiler for {ARCH}: tried {}; install gcc-{}-linux-gnu (ci/setup.sh does) or set \
         M2MFUZZ_LAYOUT_CC",
        tried.join(", "),
        ARCH.replace('_', "-")
    ))
}

fn compare(arch: &str, facts: &[Fact], c_vals: &[u64]) {
    assert_eq!(
        c_vals.len(),
        facts.len(),
        "{arch}: C program gave {} values for {} facts",
        c_vals.len(),
        facts.len()
    );
    let mut bad = Vec::new();
    let mut unchecked = Vec::new();
    for (f, &c) in facts.iter().zip(c_vals) {
        if c == u64::MAX && f.needs.is_some() {
            unchecked.push(f.label.as_str());
        } else if c != f.rust {
            bad.push(format!("{arch}: {}: C {} != Rust {}", f.label, c, f.rust));
        }
    }
    assert!(bad.is_empty(), "layout mismatches:\n{}", bad.join("\n"));
    eprintln!(
        "{arch}: {} facts equal; not in these headers (unchecked): {:?}",
        facts.len() - unchecked.len(),
        unchecked
    );
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("m2mfuzz-layout-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Values of `m2m_facts` from gcc's assembly: `.quad` (x86_64), `.xword`/`.8byte`/`.dword`
/// (aarch64). Read from assembly so nothing built for the target has to run on the build machine.
fn asm_values(asm: &str) -> Vec<u64> {
    let start = asm.find("m2m_facts:").expect("m2m_facts label in assembly");
    asm[start..]
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| {
            [".quad", ".xword", ".8byte", ".dword"]
                .iter()
                .any(|d| l.starts_with(d))
        })
        .map(|l| {
            let n = l.split_whitespace().nth(1).unwrap();
            n.parse::<i64>()
                .map(|v| v as u64)
                .or_else(|_| n.parse::<u64>())
                .unwrap()
        })
        .collect()
}

#[test]
fn layouts_match_c_headers() {
    // A precondition missing is a failure, not a skip: otherwise the claim would go unproven.
    let cc = target_cc().unwrap_or_else(|e| panic!("{e}"));
    let headers = lab_headers();
    assert!(
        headers.is_some() || std::env::var_os("CI").is_none(),
        "CI must check against the lab kernel's 6.12 uapi headers: run `LAB_ARCH={} \
         ci/lab/build-kernel.sh` first (it installs them)",
        kernel_arch()
    );
    let facts = facts();
    let dir = tmpdir(ARCH);
    let src = dir.join("layout.c");
    std::fs::write(&src, c_source(&facts)).unwrap();
    let asm = dir.join("layout.s");
    let out = Command::new(&cc)
        .args(headers.iter().map(|p| format!("-I{}", p.display())))
        .args(["-S", "-O0", "-o"])
        .arg(&asm)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{ARCH}: compiler {cc}, headers {}",
        headers.map_or("the compiler's (linux-libc-dev)".into(), |p| p
            .display()
            .to_string())
    );
    let vals = asm_values(&std::fs::read_to_string(&asm).unwrap());
    compare(ARCH, &facts, &vals);
    let _ = std::fs::remove_dir_all(&dir);
}
