//! Bad replies: the kernel said an ioctl succeeded but answered what no correct kernel answers
//! (no fd where one was promised, an fd the process already had, a count beyond the ABI's
//! limit). The executor refuses such answers ([`OpResult::BadReply`]); this oracle names the lie
//! and the driver that told it.
use super::{Finding, Kind};
use crate::exec::{ExecState, OpResult, Outcome};
use crate::program::{Op, ResKind};

/// Collects bad replies as findings.
#[derive(Default)]
pub struct ReplyOracle {
    /// Findings so far.
    pub findings: Vec<Finding>,
}

/// The lie without its numbers: the executor words a bad reply as a stable statement followed
/// by the values in parentheses.
fn stable(lie: &str) -> &str {
    lie.split(" (").next().unwrap_or(lie)
}

impl ReplyOracle {
    /// Judge one op's outcome.
    pub fn after_op(&mut self, index: usize, op: &Op, o: &Outcome, st: &ExecState) {
        let OpResult::BadReply { lie } = &o.result else {
            return;
        };
        // The driver: the op's context, or the context the op's dmabuf or sync_file came from.
        let driver = op
            .find_input(|h| h.kind == ResKind::Ctx)
            .or_else(|| {
                op.find_input(|h| st.provenance.contains_key(h))
                    .map(|h| st.provenance[&h].ctx)
            })
            .and_then(|c| st.driver_of(&c).map(str::to_string));
        let title = match &driver {
            Some(d) => format!("{} on {d}", stable(lie)),
            None => stable(lie).to_string(),
        };
        self.findings.push(Finding::new(
            Kind::BadReply,
            title,
            format!("op {index} `{op}`: {lie}; the executor did not use the answer"),
            Some(index),
        ));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lie_s_title_leaves_its_numbers_out() {
        assert_eq!(
            super::stable("VIDIOC_EXPBUF returned success without an fd (fd field -1)"),
            "VIDIOC_EXPBUF returned success without an fd"
        );
        assert_eq!(super::stable("no numbers"), "no numbers");
    }
}
