//! C reproducers compile cleanly (gcc -Wall -Wextra -Werror) for every corpus program and for
//! generated programs of every driver, invalid arguments included; the lab checks they reproduce
//! (ci/lab/repro-check.sh).
use m2mfuzz::program::generate::{generate, GenConfig, RngChoices};
use m2mfuzz::{corpus, profile, repro};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::path::PathBuf;
use std::process::Command;

fn headers() -> Vec<String> {
    let cache = std::env::var_os("M2MFUZZ_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/m2mfuzz-lab")))
        .unwrap();
    let inc = cache.join("headers/include");
    if inc.join("linux/videodev2.h").exists() {
        vec![format!("-I{}", inc.display())]
    } else {
        vec![]
    }
}

/// Compile `code` as `name` with the reproducers' flags (`-O1`, or `opt`) and return the binary.
fn compile(name: &str, code: &str, opt: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m2mfuzz-repro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, bin) = (dir.join(format!("{name}.c")), dir.join(name));
    std::fs::write(&src, code).unwrap();
    let out = Command::new("gcc")
        .args(["-Wall", "-Wextra", "-Werror", opt, "-pthread", "-o"])
        .arg(&bin)
        .args(headers())
        .arg(&src)
        .output()
        .expect("gcc");
    assert!(
        out.status.success(),
        "{name}: gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

fn compiles(name: &str, code: &str) {
    compile(name, code, "-O1");
}

#[test]
fn corpus_reproducers_compile_and_carry_their_program() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpora");
    for e in corpus::load(&[root]).unwrap() {
        let code = repro::to_c(&e.program);
        // The program is in the file, for the report's reader.
        for op in &e.program.ops {
            assert!(
                code.contains(&format!("{op} */")),
                "{}: `{op}` missing",
                e.path.display()
            );
        }
        compiles(e.path.file_stem().unwrap().to_str().unwrap(), &code);
    }
}

#[test]
fn generated_reproducers_compile_for_every_driver() {
    for (i, p) in profile::ALL.iter().enumerate() {
        for seed in 0..4 {
            let mut cfg = GenConfig::new(p);
            cfg.contexts = 2;
            cfg.body_ops = 80;
            cfg.invalid_percent = 30;
            cfg.sw_sync = true;
            // Odd seeds run their body on several threads.
            cfg.thread_percent = if seed % 2 == 1 { 100 } else { 0 };
            let prog = generate(&mut RngChoices(SmallRng::seed_from_u64(seed)), &cfg);
            let code = repro::to_c(&prog);
            assert_eq!(
                code.contains("pthread_create("),
                prog.segments()
                    .iter()
                    .any(|s| s.clone().any(|i| prog.thread(i) != prog.thread(s.start))),
                "{}",
                prog
            );
            compiles(&format!("gen-{i}-{seed}"), &code);
        }
    }
}

#[test]
fn a_reproducer_reports_a_memory_fault_as_the_executor_does_and_goes_on() {
    use m2mfuzz::exec::{ExecOptions, Executor, Resource};
    use m2mfuzz::program::{text, Handle, ResKind};
    use std::os::fd::FromRawFd;
    let prog = text::parse(
        "# m2mfuzz program v1\nfill m0 byte=0xa5\ncheck m0 byte=0xa5\ncheck m0 byte=0\n\
         sleep ms=0\n",
    )
    .unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    // The executor's outcomes, on a two-page memfd mapping cut to one page.
    let ours: Vec<String> = {
        // SAFETY: memfd_create with a valid name; the fd is new and owned by the File.
        let f = unsafe {
            let fd = libc::memfd_create(c"m2mfuzz-repro-test".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0);
            std::fs::File::from_raw_fd(fd)
        };
        f.set_len(2 * page as u64).unwrap();
        let m = memmap2::MmapOptions::new()
            .len(2 * page)
            .map_raw(&f)
            .unwrap();
        f.set_len(page as u64).unwrap();
        let mut ex = Executor::new(ExecOptions::default());
        let m0 = Handle {
            kind: ResKind::Mapping,
            id: 0,
        };
        ex.bind(m0, Resource::Map(m.into(), None));
        ex.run(&prog)
            .iter()
            .map(|o| {
                let op = prog.ops[o.index as usize].to_string();
                format!("{:4} {op:<60} {}", o.index, o.result)
            })
            .collect()
    };
    assert!(ours[0].ends_with(&format!("FAULT (SIGBUS BUS_ADRERR at offset {page:#x})")));
    // The reproducer, its m0 the same kind of mapping.
    let setup = r#"
static unsigned char *test_mapping(size_t *len)
{
	long pg = sysconf(_SC_PAGESIZE);
	int fd = memfd_create("m2mfuzz-repro-test", MFD_CLOEXEC);
	unsigned char *m;
	if (fd < 0 || ftruncate(fd, 2 * pg))
		return NULL;
	m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || ftruncate(fd, pg))
		return NULL;
	*len = 2 * pg;
	return m;
}

int main(int argc, char **argv)"#;
    let code = repro::to_c(&prog)
        .replacen("int main(int argc, char **argv)", setup, 1)
        .replacen(
            "\tinstall_fault_handler();\n",
            "\tinstall_fault_handler();\n\tm0 = test_mapping(&m0_len);\n",
            1,
        );
    let bin = compile("fault", &code, "-O2");
    let run = Command::new(&bin).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{:?}\n{stdout}", run.status);
    let lines: Vec<&str> = stdout.lines().collect();
    // Each op's line as the executor words it, the finding once, and the program went on.
    for line in &ours {
        assert!(
            lines.contains(&line.as_str()),
            "`{line}` missing:\n{stdout}"
        );
    }
    let findings: Vec<_> = lines.iter().filter(|l| l.starts_with("FINDING:")).collect();
    assert_eq!(
        findings,
        [&"FINDING: memory-fault: memory fault (SIGBUS) writing a mapping"],
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"1 ok, 3 errors"), "{stdout}");
    let _ = std::fs::remove_file(bin.with_extension("c"));
    let _ = std::fs::remove_file(&bin);
}
