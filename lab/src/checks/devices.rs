//! The device tests in the lab: `m2mfuzz probe` and the lab_devices test binary in the guest.
//! Any kernel report on the console during them fails the check too.
use crate::boot::{self, Boot, Guest};
use crate::guest_bins;
use crate::lab::Lab;
use anyhow::{bail, Result};
use std::path::Path;

/// Console lines that fail the device tests.
const REPORTS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "possible circular locking",
    "Invalid wait context",
    "blocked for more than",
];

const JOB: &str = r#"cd /host
./bin/m2mfuzz probe > out/probe.txt 2>&1
./bin/m2mfuzz probe --json > out/probe.json 2>&1
start=$(cut -d' ' -f1 /proc/uptime)
./bin/lab_devices --include-ignored --test-threads=1 > out/lab_devices.log 2>&1
rc=$?
echo "guest test seconds: $(awk -v s="$start" -v e="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print e - s }')" >> out/lab_devices.log
exit $rc
"#;

/// Run them; an error when a test failed, the guest gave no answer or the kernel reported.
pub fn run(lab: &Lab, out: &Path, cmdline: &str) -> Result<()> {
    let share = guest_bins::fresh_share(lab, out, &["corpora"])?;
    let guest = Guest::of(lab)?;
    let booted = boot::run(
        &guest,
        &Boot::new(out, &share, JOB).timeout(900).cmdline(cmdline),
    )?;
    if let Ok(log) = std::fs::read_to_string(booted.result("lab_devices.log")) {
        print!("{log}");
    }
    let rc = booted.rc()?;
    let console = String::from_utf8_lossy(&std::fs::read(&booted.console)?).into_owned();
    let reports = report_lines(&console);
    if !reports.is_empty() {
        bail!(
            "kernel reports in the console during the device tests ({}):\n{}",
            booted.console.display(),
            reports.join("\n")
        );
    }
    if rc != 0 {
        bail!(
            "device tests failed (exit {rc}); log: {}",
            booted.result("lab_devices.log").display()
        );
    }
    Ok(())
}

/// The console's kernel report lines, numbered, at most ten.
fn report_lines(console: &str) -> Vec<String> {
    console
        .lines()
        .enumerate()
        .filter(|(_, l)| REPORTS.iter().any(|r| l.contains(r)))
        .take(10)
        .map(|(i, l)| format!("{}:{l}", i + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hung_task_and_a_lockdep_report_fail_and_plain_lines_do_not() {
        let console =
            "[ 1.0] ok\n[ 2.0] INFO: task kworker/0:1:12 blocked for more than 20 seconds.\n\
                       [ 3.0] WARNING: possible circular locking dependency detected\n";
        let r = super::report_lines(console);
        assert_eq!(r.len(), 2);
        assert!(r[0].starts_with("2:"));
        assert!(super::report_lines("[ 1.0] vim2m: job done\n").is_empty());
    }
}
