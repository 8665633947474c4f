//! Print the reports m2mfuzz finds in kernel log files: `cargo run --example splats -- FILE…`.
fn main() {
    for f in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
        for s in m2mfuzz::oracle::splat::parse(&text, &Default::default()) {
            let place = if s.under_test {
                "under test"
            } else {
                "elsewhere"
            };
            println!(
                "{f}: {:?} | {} | {place} ({})",
                s.class, s.title, s.attribution
            );
        }
    }
}
