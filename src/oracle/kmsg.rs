//! Reading /dev/kmsg from the current end, without blocking, noting overruns.
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// A reader positioned at the end of the kernel log when it was opened.
pub struct KmsgReader {
    file: File,
    /// Reused: the oracles read after every op.
    buf: Vec<u8>,
    /// Records lost to ring-buffer overruns (EPIPE).
    pub overruns: u64,
}

impl KmsgReader {
    /// Open /dev/kmsg and skip what is already there.
    pub fn open() -> std::io::Result<KmsgReader> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        // SAFETY: lseek on a live fd; SEEK_END on /dev/kmsg moves past every existing record.
        unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
        Ok(KmsgReader {
            file,
            buf: vec![0u8; 8192],
            overruns: 0,
        })
    }

    /// Every record since the last call, one message line per record.
    pub fn read_new(&mut self) -> String {
        let mut out = String::new();
        loop {
            match self.file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&self.buf[..n]);
                    // "pri,seq,usec,flags[,…];message\n KEY=value…"
                    if let Some((_, msg)) = rec.split_once(';') {
                        let msg = msg.lines().next().unwrap_or("");
                        out.push_str(&unescape(msg));
                        out.push('\n');
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    // The ring buffer overwrote records we had not read: say so, keep reading.
                    self.overruns += 1;
                    out.push_str("m2mfuzz: kmsg overrun, records lost\n");
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// kmsg escapes non-printable bytes as `\xNN`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}
