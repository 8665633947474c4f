//! The lab's two architectures: x86_64 (the default, fast under TCG) and arm64 (the boards',
//! RK3566/RK3588). One set of checks serves both; everything that differs is here.
use clap::ValueEnum;

/// A lab architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// x86_64 guest, native tools.
    #[value(name = "x86_64", alias = "amd64")]
    X86_64,
    /// arm64 guest (the boards'), cross-built.
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl Arch {
    /// The kernel's ARCH= name.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's target triple for the guest's binaries.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The kernel image, relative to the kernel tree.
    pub fn kernel_image(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch/x86/boot/bzImage",
            Arch::Arm64 => "arch/arm64/boot/Image",
        }
    }

    /// The QEMU system emulator and the Debian package holding it.
    pub fn qemu(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("qemu-system-x86_64", "qemu-system-x86"),
            Arch::Arm64 => ("qemu-system-aarch64", "qemu-system-arm"),
        }
    }

    /// Tells cache entries and output directories of the architectures apart ("" for x86_64,
    /// so its paths stay what they were).
    pub fn suffix(self) -> &'static str {
        match self {
            Arch::X86_64 => "",
            Arch::Arm64 => "-arm64",
        }
    }

    /// The C compiler for static guest programs, and its Debian packages.
    pub fn cc(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Arch::X86_64 => ("gcc", &["gcc", "libc6-dev"]),
            Arch::Arm64 => (
                "aarch64-linux-gnu-gcc",
                &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
            ),
        }
    }

    /// The C++ compiler and archiver for libFuzzer (the fuzz targets), and their Debian packages.
    pub fn cxx(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            Arch::X86_64 => ("g++", "ar", &["g++"]),
            Arch::Arm64 => (
                "aarch64-linux-gnu-g++",
                "aarch64-linux-gnu-ar",
                &["g++-aarch64-linux-gnu"],
            ),
        }
    }

    /// `make` prefix for the kernel when this host is not the architecture.
    pub fn cross_compile(self) -> Option<&'static str> {
        match self {
            Arch::Arm64 if std::env::consts::ARCH != "aarch64" => Some("aarch64-linux-gnu-"),
            _ => None,
        }
    }

    /// The machine, console device and extra kernel arguments of its QEMU guest.
    pub fn machine(self) -> (&'static [&'static str], &'static str, &'static str) {
        match self {
            // acpi=noirq: PCI interrupts from the BIOS routing table; enabling the 9p device's
            // ACPI interrupt link took about 1.9 s of every boot under TCG.
            Arch::X86_64 => (&["-cpu", "max"], "ttyS0", "acpi=noirq"),
            // The virt machine: device tree, PL011 console, PCI (ECAM) for the 9p device.
            // pauth-impdef: TCG emulates pointer authentication's QARMA cipher slowly; an
            // implementation-defined one keeps the feature at a fraction of the cost.
            Arch::Arm64 => (
                &["-M", "virt", "-cpu", "max,pauth-impdef=on"],
                "ttyAMA0",
                "",
            ),
        }
    }
}
