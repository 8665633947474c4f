//! The program text format: `parse(print(p)) == p` over generated programs, and parse errors
//! that name the line and column.
use arbitrary::{Arbitrary, Unstructured};
use m2mfuzz::profile;
use m2mfuzz::program::generate::{generate, GenConfig, RngChoices};
use m2mfuzz::program::{text, Program};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn roundtrip(p: &Program) {
    let s = p.to_string();
    let back = text::parse(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    assert_eq!(&back, p, "round trip changed the program:\n{s}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn generated_programs_round_trip(seed: u64, driver in 0..profile::ALL.len(), invalid in 0u32..=100,
                                     contexts in 1u32..4, body in 0usize..120, threads in 0u32..=100) {
        let mut cfg = GenConfig::new(&profile::ALL[driver]);
        cfg.invalid_percent = invalid;
        cfg.thread_percent = threads;
        cfg.contexts = contexts;
        cfg.body_ops = body;
        cfg.sw_sync = true;
        let p = generate(&mut RngChoices(SmallRng::seed_from_u64(seed)), &cfg);
        prop_assert!(!p.ops.is_empty());
        roundtrip(&p);
    }

    #[test]
    fn arbitrary_programs_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let p = Program::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        roundtrip(&p);
    }

    /// The executor's allocation-free handle search agrees with the collected inputs.
    #[test]
    fn find_input_agrees_with_inputs(bytes in proptest::collection::vec(any::<u8>(), 0..4096), odd: bool) {
        let p = Program::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        for op in &p.ops {
            let pred = |h: &m2mfuzz::program::Handle| h.id % 2 == u32::from(odd);
            prop_assert_eq!(op.find_input(pred), op.inputs().into_iter().find(pred), "{}", op);
            prop_assert_eq!(op.find_input(|_| true), op.inputs().first().copied(), "{}", op);
        }
    }
}

#[test]
fn every_op_kind_is_generated_and_round_trips() {
    // Every op of the table, over 100 seeds of each driver's programs (a stress run's thread
    // share), each round-tripped.
    let mut seen = std::collections::BTreeSet::new();
    let mut threaded = 0;
    for seed in 0..100 * profile::ALL.len() as u64 {
        let mut cfg = GenConfig::new(&profile::ALL[seed as usize % profile::ALL.len()]);
        cfg.invalid_percent = 20;
        cfg.contexts = 2;
        cfg.body_ops = 80;
        cfg.thread_percent = m2mfuzz::profile::stress::DEFAULT_THREAD_PERCENT;
        let p = generate(&mut RngChoices(SmallRng::seed_from_u64(seed)), &cfg);
        threaded += usize::from(p.is_threaded());
        roundtrip(&p);
        seen.extend(p.ops.iter().map(|o| o.name()));
    }
    let total = 100 * profile::ALL.len();
    assert!(
        (total * 15 / 100..=total * 35 / 100).contains(&threaded),
        "{threaded} of {} programs threaded at a 25 % share",
        100 * profile::ALL.len()
    );
    let never: Vec<&str> = m2mfuzz::program::OP_SIGNATURES
        .iter()
        .map(|s| s.0)
        .filter(|n| !seen.contains(n))
        .collect();
    assert!(never.is_empty(), "the generator never emits {never:?}");
}

#[test]
fn a_threaded_program_is_v2_and_keeps_its_threads() {
    let src = "# m2mfuzz program v2\n# driver: vim2m\n\
               open node=vim2m -> c0\n\
               reqbufs c0 queue=cap count=2 memory=mmap\n\
               @1 dqbuf c0 queue=cap timeout_ms=100\n\
               @2   streamoff c0 queue=cap # a comment\n\
               barrier\n\
               close c0\n";
    let p = text::parse(src).unwrap();
    assert_eq!(p.threads, [0, 0, 1, 2, 0, 0]);
    assert_eq!(p.segments(), [0..4, 4..5, 5..6]);
    assert!(p.is_threaded());
    let printed = p.to_string();
    assert!(printed.starts_with("# m2mfuzz program v2\n"), "{printed}");
    assert!(
        printed.contains("\n@2 streamoff c0 queue=cap\n"),
        "{printed}"
    );
    roundtrip(&p);
    // The same ops on one thread print as v1.
    let flat = Program::from_steps(
        p.header.clone(),
        p.steps()
            .filter(|(_, o)| o.name() != "barrier")
            .map(|(_, o)| (0, o.clone()))
            .collect(),
    );
    assert!(flat.to_string().starts_with("# m2mfuzz program v1\n"));
    assert!(flat.threads.is_empty());
    // v1 has no threads; threads are 0 to 7; `@N` needs an op.
    let e =
        text::parse("# m2mfuzz program v1\nopen node=vim2m -> c0\n  @1 close c0\n").unwrap_err();
    assert_eq!((e.line, e.col), (3, 3), "{e}");
    assert!(e.msg.contains("need `# m2mfuzz program v2`"), "{e}");
    let e = text::parse("# m2mfuzz program v1\nbarrier\n").unwrap_err();
    assert!(e.msg.contains("`barrier` need"), "{e}");
    let e = text::parse("# m2mfuzz program v2\n@8 sleep ms=1\n").unwrap_err();
    assert_eq!((e.line, e.col), (2, 1), "{e}");
    assert!(e.msg.contains("from 0 to 7"), "{e}");
    let e = text::parse("# m2mfuzz program v2\n@1\n").unwrap_err();
    assert!(e.msg.contains("must be followed by an op"), "{e}");
    // Errors after the prefix point into the op.
    let e = text::parse("# m2mfuzz program v2\n@3 sleep ms=x\n").unwrap_err();
    assert_eq!((e.line, e.col), (2, 10), "{e}");
}

#[test]
fn hand_written_program_parses() {
    let src = "# m2mfuzz program v1\n# driver: vim2m\n# expect: clean\n\
               open node=vim2m -> c0   # a context\n\
               s_fmt c0 queue=cap fourcc=RGBP width=640 height=480\n\
               reqbufs c0 queue=cap count=2 memory=mmap\n\
               expbuf c0 queue=cap index=0 -> d0\n\
               export_sync_file d0 dir=read -> s0\n\
               wait s0 timeout_ms=1000\n\
               qbuf c0 queue=out index=0 bytesused=614400 flags=0x200\n\
               close c0\n";
    let p = text::parse(src).unwrap();
    assert_eq!(p.header("driver"), Some("vim2m"));
    assert_eq!(p.header("expect"), Some("clean"));
    assert_eq!(p.ops.len(), 8);
    assert_eq!(p.ops[3].to_string(), "expbuf c0 queue=cap index=0 -> d0");
    roundtrip(&p);
}

fn err(src_body: &str) -> text::ParseError {
    text::parse(&format!(
        "# m2mfuzz program v1\nopen node=vim2m -> c0\n{src_body}\n"
    ))
    .unwrap_err()
}

#[test]
fn parse_errors_name_line_and_column() {
    let e = err("reqbufs c0 queue=cap count=two memory=mmap");
    assert_eq!((e.line, e.col), (3, 22), "{e}");
    assert!(
        e.to_string()
            .starts_with("line 3, column 22: `count`: `two` is not a number"),
        "{e}"
    );

    let e = err("frobnicate c0");
    assert_eq!((e.line, e.col), (3, 1));
    assert!(e.msg.contains("unknown op `frobnicate`"));

    let e = err("qbuf d0 queue=cap index=0");
    assert_eq!((e.line, e.col), (3, 6));
    assert!(e.msg.contains("needs a c handle"), "{e}");

    let e = err("qbuf c0 queue=sideways index=0");
    assert_eq!((e.line, e.col), (3, 9));
    assert!(e.msg.contains("not one of out, cap"), "{e}");

    let e = err("qbuf c0 index=0");
    assert!(e.msg.contains("needs `queue=`"), "{e}");

    let e = err("  expbuf c0 queue=cap index=0");
    assert_eq!((e.line, e.col), (3, 30), "{e}");
    assert!(e.msg.contains("end the line with `-> dN`"), "{e}");

    let e = err("streamon c0 queue=cap bogus=1");
    assert_eq!((e.line, e.col), (3, 23));
    assert!(e.msg.contains("has no argument `bogus`"), "{e}");

    let e = text::parse("open node=vim2m -> c0\n").unwrap_err();
    assert_eq!((e.line, e.col), (1, 1));
    assert!(e.msg.contains("# m2mfuzz program v1"));
}

#[test]
fn a_check_looks_for_the_canary_last_filled_into_its_mapping_and_no_fill_reuses_a_byte() {
    // A frame copied from a buffer holding an older canary must not pass for the canary.
    use m2mfuzz::program::Op;
    let mut checks = 0;
    for seed in 0..300 {
        let mut cfg = GenConfig::new(&profile::driver::VIM2M);
        cfg.contexts = 2;
        cfg.body_ops = 100;
        // With corrupted arguments (the default share): fills and checks must never be.
        cfg.invalid_percent = 20;
        let p = generate(&mut RngChoices(SmallRng::seed_from_u64(seed)), &cfg);
        let mut last = std::collections::BTreeMap::new();
        let mut used = std::collections::BTreeSet::new();
        for op in &p.ops {
            match op {
                Op::Fill { map, byte } => {
                    assert!(
                        byte.0 != 0,
                        "seed {seed}: 0x00 is a fresh buffer's contents"
                    );
                    assert!(
                        used.insert(byte.0),
                        "seed {seed}: fill byte {:#x} used twice",
                        byte.0
                    );
                    last.insert(*map, byte.0);
                }
                Op::Check { map, byte } => {
                    checks += 1;
                    assert_eq!(last.get(map), Some(&byte.0), "seed {seed}: {op}");
                }
                _ => {}
            }
        }
    }
    assert!(checks > 100, "only {checks} checks generated");
}
