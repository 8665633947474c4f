//! Proves that every uapi struct's size and field offsets, and every ioctl number, equal what the
//! kernel headers give in C: run natively on x86_64, and compiled for aarch64 (the board) with the
//! cross compiler, reading the constants from its assembly. The headers are the lab kernel's 6.12
//! uapi headers when `ci/lab/build-kernel.sh` has installed them, else the system's linux-libc-dev.
use m2mfuzz::uapi::dmabuf::*;
use m2mfuzz::uapi::ioctl;
use m2mfuzz::uapi::kcov::*;
use m2mfuzz::uapi::media::*;
use m2mfuzz::uapi::sync_file::*;
use m2mfuzz::uapi::v4l2::*;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
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
fn c_source(facts: &[Fact], with_main: bool) -> String {
    let mut s = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <linux/videodev2.h>\n\
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
    if with_main {
        s +=
            "int main(void) { for (size_t i = 0; i < sizeof(m2m_facts)/sizeof(m2m_facts[0]); i++) \
              printf(\"%llu\\n\", m2m_facts[i]); return 0; }\n";
    }
    s
}

/// The 6.12 uapi headers the lab build installs, if present.
fn lab_headers() -> Option<PathBuf> {
    let cache = std::env::var_os("M2MFUZZ_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/m2mfuzz-lab"))
        })?;
    let p = cache.join("headers/include");
    p.join("linux/videodev2.h").exists().then_some(p)
}

fn include_args(cross: bool, dir: &Path) -> Vec<String> {
    match lab_headers() {
        // Only linux/ from the lab headers: asm/ must be the target's, which for aarch64 is the
        // cross toolchain's (the lab installs x86's).
        Some(p) if cross => {
            let inc = dir.join("inc");
            std::fs::create_dir_all(&inc).unwrap();
            let link = inc.join("linux");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(p.join("linux"), &link).unwrap();
            vec![format!("-I{}", inc.display())]
        }
        Some(p) => vec![format!("-I{}", p.display())],
        None => vec![],
    }
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

#[test]
fn layouts_match_c_headers_x86_64() {
    let facts = facts();
    let dir = tmpdir("native");
    let src = dir.join("layout.c");
    std::fs::write(&src, c_source(&facts, true)).unwrap();
    let exe = dir.join("layout");
    let out = Command::new("cc")
        .args(include_args(false, &dir))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc (install gcc)");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    let vals: Vec<u64> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    eprintln!(
        "headers: {}",
        lab_headers().map_or("system linux-libc-dev".into(), |p| p.display().to_string())
    );
    compare(std::env::consts::ARCH, &facts, &vals);
}

/// Values of `m2m_facts` from aarch64 gcc's assembly (`.xword`/`.8byte` directives).
fn aarch64_values(asm: &str) -> Vec<u64> {
    let start = asm.find("m2m_facts:").expect("m2m_facts label in assembly");
    asm[start..]
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| {
            l.starts_with(".xword") || l.starts_with(".8byte") || l.starts_with(".dword")
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
fn layouts_match_c_headers_aarch64() {
    let gcc = Path::new("/usr/bin/aarch64-linux-gnu-gcc");
    if !gcc.exists() {
        // CI installs the cross compiler (ci/setup.sh); a developer machine may not have it.
        assert!(
            std::env::var_os("CI").is_none(),
            "aarch64-linux-gnu-gcc missing in CI: ci/setup.sh should install gcc-aarch64-linux-gnu"
        );
        eprintln!("SKIPPED: apt-get install gcc-aarch64-linux-gnu to check aarch64 layouts");
        return;
    }
    // x86_64 Rust layouts equal aarch64's when the C layouts are equal on both: every field is a
    // fixed-width integer, an array of one, or a pointer/usize, which LP64 aligns alike.
    let facts = facts();
    let dir = tmpdir("aarch64");
    let src = dir.join("layout.c");
    std::fs::write(&src, c_source(&facts, false)).unwrap();
    let asm = dir.join("layout.s");
    let out = Command::new(gcc)
        .args(include_args(true, &dir))
        .args(["-S", "-O0", "-o"])
        .arg(&asm)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aarch64 gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vals = aarch64_values(&std::fs::read_to_string(&asm).unwrap());
    compare("aarch64", &facts, &vals);
}
