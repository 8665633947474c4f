//! Memory faults: a `fill` or `check` of a mapping met SIGBUS or SIGSEGV
//! ([`OpResult::Fault`]). A mapping the program holds keeps its memory for as long as it is
//! mapped: vb2 maps every page of a plane at mmap time and the mapping holds a reference on the
//! plane (`vb2_common_vm_ops`), which REQBUFS and REMOVE_BUFS leave alone when they free the
//! buffer (they orphan its memory); a dmabuf mapping holds the dmabuf's file, and the dmabuf
//! core refuses a mapping larger than the buffer. So no access inside a mapping the program
//! still holds may fault: each fault is a finding, once per mapping (a later access reporting
//! the same fault again, [`OpResult::Fault::again`], is not a new one).
use super::{Finding, Kind};
use crate::exec::{BufId, ExecState, OpResult, Outcome};
use crate::program::{Handle, Op, Queue};
use std::collections::BTreeMap;

/// How a mapping was made.
struct Made {
    /// The op, as text, and its index.
    op: String,
    index: usize,
    /// Of a dmabuf (else of a V4L2 buffer).
    dmabuf: bool,
}

/// Collects memory faults as findings.
#[derive(Default)]
pub struct FaultOracle {
    /// Mappings the program made, by handle.
    made: BTreeMap<Handle, Made>,
    /// Contexts' drivers, as they were opened (a mapping outlives its context's handle).
    drivers: BTreeMap<Handle, String>,
    /// Findings so far.
    pub findings: Vec<Finding>,
}

/// The queue's name in a title: `CAPTURE`, `OUTPUT`, or the raw buffer type.
fn queue_name(q: Queue) -> String {
    match q {
        Queue::Out => "OUTPUT".into(),
        Queue::Cap => "CAPTURE".into(),
        Queue::Raw(v) => format!("queue type {v}"),
    }
}

/// The mapping in a title: "a mapping of vim2m CAPTURE buffer 0", "a dmabuf mapping of …", or
/// "a mapping" when the buffer is not known.
pub fn mapping_words(dmabuf: bool, buf: Option<(&str, BufId)>) -> String {
    let kind = if dmabuf {
        "a dmabuf mapping"
    } else {
        "a mapping"
    };
    match buf {
        Some((driver, b)) => format!(
            "{kind} of {driver} {} buffer {}",
            queue_name(b.queue),
            b.index
        ),
        None => kind.to_string(),
    }
}

/// A memory fault's title: "memory fault (SIGBUS) reading a mapping of vim2m CAPTURE buffer 0"
/// (`writing` for a fill). The C reproducer prints the same, `signal` its `%s`.
pub fn title(signal: &str, writing: bool, mapping: &str) -> String {
    let verb = if writing { "writing" } else { "reading" };
    format!("memory fault ({signal}) {verb} {mapping}")
}

impl FaultOracle {
    /// Judge one op's outcome.
    pub fn after_op(&mut self, index: usize, op: &Op, o: &Outcome, st: &ExecState) {
        let ok = matches!(o.result, OpResult::Ok { .. });
        match op {
            Op::Open { ret, .. } if ok => {
                if let Some(d) = st.driver_of(ret) {
                    self.drivers.insert(*ret, d.to_string());
                }
            }
            Op::Mmap { ret, .. } | Op::MmapDmabuf { ret, .. } if ok => {
                self.made.insert(
                    *ret,
                    Made {
                        op: op.to_string(),
                        index,
                        dmabuf: matches!(op, Op::MmapDmabuf { .. }),
                    },
                );
            }
            Op::Fill { map, .. } | Op::Check { map, .. } => {
                let OpResult::Fault {
                    signal,
                    again: false,
                    ..
                } = o.result
                else {
                    return;
                };
                let made = self.made.get(map);
                let buf = st.provenance.get(map).copied();
                let driver = buf.map(|b| {
                    st.driver_of(&b.ctx)
                        .or(self.drivers.get(&b.ctx).map(String::as_str))
                        .unwrap_or("unknown")
                });
                let words = mapping_words(made.is_some_and(|m| m.dmabuf), driver.zip(buf));
                let sig = crate::exec::memfault::signal_name(signal.into());
                let writing = matches!(op, Op::Fill { .. });
                let how = match made {
                    Some(m) => format!("made by op {} `{}`", m.index, m.op),
                    None => "bound before the program".into(),
                };
                self.findings.push(Finding::new(
                    Kind::MemoryFault,
                    title(&sig, writing, &words),
                    format!(
                        "op {index} `{op}`: {} ({}); {map} is {words}, {how}, and still mapped: \
                         the mapping holds the buffer's memory, so no access inside it may fault",
                        o.result,
                        o.detail_text().unwrap_or_default()
                    ),
                    Some(index),
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Ctx, ExecOptions, Executor, NodeClaim, Observer, QueueState, Resource};
    use crate::program::{text, ResKind};
    use std::os::fd::FromRawFd;

    fn h(kind: ResKind, id: u32) -> Handle {
        Handle { kind, id }
    }

    fn outcome(index: usize, result: OpResult) -> Outcome {
        Outcome {
            index: index as u32,
            result,
            duration_us: 0,
            detail: None,
        }
    }

    fn sigbus(again: bool) -> OpResult {
        OpResult::Fault {
            signal: libc::SIGBUS as u8,
            code: libc::BUS_ADRERR,
            offset: 4096,
            again,
        }
    }

    #[test]
    fn a_fault_in_a_live_mapping_is_a_finding_naming_the_buffer_once_per_mapping() {
        let prog = text::parse(
            "# m2mfuzz program v1\nopen node=vim2m -> c0\nmmap c0 queue=cap index=1 -> m0\n\
             check m0 byte=0x5a\nfill m0 byte=0x5a\nexpbuf c0 queue=cap index=1 -> d0\n\
             mmap_dmabuf d0 -> m1\nfill m1 byte=0x11\nclose c0\nfill m1 byte=0x12\n",
        )
        .unwrap();
        let mut st = ExecState::default();
        let c0 = h(ResKind::Ctx, 0);
        let null = std::fs::File::open("/dev/null").unwrap();
        st.res.insert(
            c0,
            Resource::Ctx(Ctx {
                video: std::sync::Arc::new(null.into()),
                media: None,
                path: "/dev/null".into(),
                driver: "vim2m".into(),
                mplane: false,
                queues: [QueueState::default(); 2],
                claim: std::sync::Arc::new(NodeClaim::new(u64::MAX - 7)),
            }),
        );
        let buf = BufId {
            ctx: c0,
            queue: Queue::Cap,
            index: 1,
        };
        for m in [h(ResKind::Mapping, 0), h(ResKind::Mapping, 1)] {
            st.provenance.insert(m, buf);
        }
        let results = [
            OpResult::Ok { value: 3 },
            OpResult::Ok { value: 4096 },
            sigbus(false),
            // The same fault, met again through the replaced mapping: not a new finding.
            sigbus(true),
            OpResult::Ok { value: 5 },
            OpResult::Ok { value: 8192 },
            sigbus(false),
            OpResult::Ok { value: 0 },
            sigbus(false),
        ];
        let mut oracle = FaultOracle::default();
        for (i, (op, r)) in prog.ops.iter().zip(results).enumerate() {
            if matches!(op, Op::Close { .. }) {
                st.res.remove(&c0);
            }
            oracle.after_op(i, op, &outcome(i, r), &st);
        }
        let titles: Vec<_> = oracle.findings.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            titles,
            [
                "memory-fault: memory fault (SIGBUS) reading a mapping of vim2m CAPTURE buffer 1",
                "memory-fault: memory fault (SIGBUS) writing a dmabuf mapping of vim2m CAPTURE \
                 buffer 1",
                // The context's handle is closed; the mapping keeps it, and the oracle its name.
                "memory-fault: memory fault (SIGBUS) writing a dmabuf mapping of vim2m CAPTURE \
                 buffer 1",
            ]
        );
        let f = &oracle.findings[0];
        assert_eq!(f.op, Some(2));
        assert!(
            f.evidence
                .contains("made by op 1 `mmap c0 queue=cap index=1 -> m0`"),
            "{}",
            f.evidence
        );
        assert_eq!(Kind::from_name("memory-fault"), Some(Kind::MemoryFault));
    }

    #[test]
    fn a_real_fault_run_under_the_oracles_gives_the_finding() {
        // SAFETY: memfd_create with a valid name; the fd is new and owned by the File.
        let f = unsafe {
            let fd = libc::memfd_create(c"m2mfuzz-oracle-test".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0);
            std::fs::File::from_raw_fd(fd)
        };
        f.set_len(8192).unwrap();
        let m = memmap2::MmapOptions::new().len(8192).map_raw(&f).unwrap();
        f.set_len(0).unwrap();
        let prog = text::parse("# m2mfuzz program v1\ncheck m0 byte=0\nfill m0 byte=1\n").unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        ex.bind(h(ResKind::Mapping, 0), Resource::Map(m.into(), None));
        let mut oracles = super::super::OracleSet::local(Default::default());
        let out = ex.run_observed(&prog, &mut oracles as &mut dyn Observer);
        assert!(matches!(out[1].result, OpResult::Fault { again: true, .. }));
        let titles: Vec<_> = oracles.take_local().iter().map(|f| f.to_string()).collect();
        assert_eq!(
            titles,
            ["memory-fault: memory fault (SIGBUS) reading a mapping"]
        );
    }
}
