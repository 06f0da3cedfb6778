//! Untrusted ELF input: a truncated, corrupt, non-ELF, 32-bit, big-endian
//! or dynamic-section-less file, an empty file, a directory, a FIFO and a
//! missing path each give an error that names the file and the problem,
//! through the library (`ElfImage::read`) and through every command that
//! reads a library (`audit` as the library, the reference or a consumer;
//! `diff`) with exit code 2. Never a panic, never a hang.
//!
//! The last test mutates small real ELF files with a fixed pseudo-random
//! sequence, so that stable `cargo test` exercises the reader the way the
//! `fuzz/` targets do (which need nightly; see `scripts/fuzz`).

#[allow(dead_code)]
mod support_audit;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cudastub_codegen::elf::ElfImage;
use cudastub_tests::{compile_c, fixtures, tempdir};
use support_audit::{audit, cudastub_binary, diff};

/// A broken input: its name, its path, and words its error must contain.
struct Case {
    path: PathBuf,
    problem: &'static str,
}

/// The real 12 runtime's bytes.
fn real_bytes() -> Vec<u8> {
    std::fs::read(&fixtures().cuda12.library).expect("reading the real runtime")
}

/// Writes `bytes` to `dir/name`.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("writing a test file");
    p
}

/// A deterministic xorshift generator: the same bytes on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn cases(dir: &Path) -> Vec<Case> {
    let real = real_bytes();
    let mut cases = Vec::new();
    // Cut at several offsets: inside the identification, inside the header,
    // just after it, in the middle, one byte short.
    for cut in [1, 4, 16, 63, 64, 1000, real.len() / 2, real.len() - 1] {
        cases.push(Case {
            path: write(dir, &format!("truncated-{cut}"), &real[..cut]),
            problem: if cut < 4 {
                "not an ELF file"
            } else if cut < 64 {
                "truncated"
            } else {
                "truncated or corrupt"
            },
        });
    }
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    cases.push(Case {
        path: write(dir, "garbage", &rng.bytes(4096)),
        problem: "not an ELF file",
    });
    let mut magic_then_garbage = b"\x7fELF\x02\x01\x01\x00".to_vec();
    magic_then_garbage.extend(rng.bytes(4096));
    cases.push(Case {
        path: write(dir, "magic-then-garbage", &magic_then_garbage),
        problem: "error",
    });
    let mut class32 = real.clone();
    class32[4] = 1; // EI_CLASS = ELFCLASS32
    cases.push(Case {
        path: write(dir, "class32", &class32),
        problem: "32-bit",
    });
    let mut big = real.clone();
    big[5] = 2; // EI_DATA = ELFDATA2MSB
    cases.push(Case {
        path: write(dir, "big-endian", &big),
        problem: "big-endian",
    });
    let mut no_sections = real.clone();
    no_sections[0x28..0x30].fill(0); // e_shoff = 0, as `sstrip` leaves it
    cases.push(Case {
        path: write(dir, "no-section-headers", &no_sections),
        problem: "no section headers",
    });
    let mut huge_shnum = real.clone();
    huge_shnum[0x3c..0x3e].copy_from_slice(&u16::MAX.to_le_bytes()); // e_shnum
    cases.push(Case {
        path: write(dir, "huge-shnum", &huge_shnum),
        problem: "truncated or corrupt",
    });
    cases.push(Case {
        path: write(dir, "empty", &[]),
        problem: "empty file",
    });
    cases.push(Case {
        path: write(dir, "text", b"libcudart.so.12 { global: *; };\n"),
        problem: "not an ELF file",
    });

    // No dynamic section: an object file and a static executable.
    let src = write(dir, "main.c", b"int main(void) { return 0; }\n");
    let object = dir.join("main.o");
    compile_c([
        "-c".into(),
        "-o".into(),
        object.display().to_string(),
        src.display().to_string(),
    ]);
    cases.push(Case {
        path: object,
        problem: "no dynamic section",
    });
    let static_exe = dir.join("static");
    compile_c([
        "-static".into(),
        "-o".into(),
        static_exe.display().to_string(),
        src.display().to_string(),
    ]);
    cases.push(Case {
        path: static_exe,
        problem: "no dynamic section",
    });

    cases.push(Case {
        path: dir.to_path_buf(),
        problem: "a directory",
    });
    cases.push(Case {
        path: dir.join("does-not-exist.so"),
        problem: "No such file",
    });
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("running mkfifo");
    assert!(made.success(), "mkfifo failed");
    cases.push(Case {
        path: fifo,
        problem: "not a regular file",
    });
    cases
}

#[test]
fn the_reader_names_the_file_and_the_problem() {
    let dir = tempdir();
    for case in cases(dir.path()) {
        let e = ElfImage::read(&case.path).expect_err(&format!(
            "{} should not read as an ELF image",
            case.path.display()
        ));
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("{}: error: ", case.path.display()))
                && message.contains(case.problem),
            "{}: expected an error naming the file and `{}`, got: {message}",
            case.path.display(),
            case.problem
        );
    }
}

/// Runs `cudastub ARGS` with a deadline, so that a hang fails the test
/// instead of stalling it.
fn cudastub_within(args: &[&std::ffi::OsStr], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(cudastub_binary())
        .args(args)
        .current_dir(cudastub_tests::repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running cudastub");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for cudastub") {
            let out = child.wait_with_output().expect("collecting output");
            let _ = status;
            return (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cudastub {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_command_exits_2_naming_the_file() {
    let dir = tempdir();
    let good = fixtures().cuda12.library.as_os_str();
    let limit = Duration::from_secs(60);
    for case in cases(dir.path()) {
        let bad = case.path.as_os_str();
        let commands: [Vec<&std::ffi::OsStr>; 4] = [
            vec!["audit".as_ref(), bad, "--major".as_ref(), "12".as_ref()],
            vec!["audit".as_ref(), good, "--reference".as_ref(), bad],
            vec!["audit".as_ref(), good, "--consumer".as_ref(), bad],
            vec!["diff".as_ref(), good, bad],
        ];
        for args in commands {
            let (code, stderr) = cudastub_within(&args, limit);
            if args[1] == bad && case.problem == "a directory" {
                // `audit DIR` audits every shim in a dist directory: an
                // empty one is the error.
                assert_eq!(code, Some(2), "cudastub {args:?}: {stderr}");
                assert!(
                    stderr.contains(&format!(
                        "{}: error: holds no shared library",
                        case.path.display()
                    )),
                    "cudastub {args:?}: {stderr}"
                );
                continue;
            }
            assert_eq!(code, Some(2), "cudastub {args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("{}: error: ", case.path.display()))
                    && stderr.contains(case.problem),
                "cudastub {args:?}: expected an error naming the file and `{}`, got: {stderr}",
                case.problem
            );
            assert!(!stderr.contains("panicked"), "cudastub {args:?}: {stderr}");
        }
    }
    // The shared helpers agree (and the JSON format changes nothing).
    let missing = dir.path().join("none");
    let o = audit([missing.as_os_str(), "--format".as_ref(), "json".as_ref()]);
    o.expect_code(2);
    // In JSON the error is a JSON object on stdout as well.
    let error: serde_json::Value = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("the error is not JSON ({e}): {o}"));
    assert_eq!(error["verdict"], "error", "{o}");
    assert_eq!(
        error["diagnostics"][0]["file"],
        missing.display().to_string(),
        "{o}"
    );
    diff([missing.as_os_str(), missing.as_os_str()]).expect_code(2);
}

/// Small real ELF files: a versioned library with a hidden and a data
/// symbol, a consumer with a weak reference, and an unversioned library.
fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    let lib_c = write(
        dir,
        "seed.c",
        b"int cudaMalloc(void **p) { (void)p; return 0; }\n\
          int cudaFree(void *p) { (void)p; return 0; }\n\
          int cudaOld_impl(void) { return 1; }\n\
          #ifndef UNVERSIONED\n\
          __asm__(\".symver cudaOld_impl, cudaOld@libcudart.so.1\");\n\
          #endif\n\
          int cudaCounter = 0;\n",
    );
    let map = write(
        dir,
        "seed.map",
        b"libcudart.so.1 { global: cudaMalloc; cudaFree; cudaOld; cudaCounter; local: *; };\n",
    );
    let app_c = write(
        dir,
        "app.c",
        b"extern int cudaMalloc(void **p);\n\
          extern int cudaFree(void *p) __attribute__((weak));\n\
          int main(void) { void *p; return cudaMalloc(&p) + (cudaFree ? 0 : 1); }\n",
    );
    let lib = dir.join("libcudart.so.1");
    let small = ["-Os", "-s", "-Wl,-z,noseparate-code"].map(String::from);
    let mut args: Vec<String> = [
        "-shared",
        "-fPIC",
        "-nostdlib",
        "-Wl,-soname,libcudart.so.1",
    ]
    .map(String::from)
    .to_vec();
    args.extend(small.clone());
    let mut versioned = args.clone();
    versioned.extend([
        format!("-Wl,--version-script,{}", map.display()),
        "-o".into(),
        lib.display().to_string(),
        lib_c.display().to_string(),
    ]);
    compile_c(&versioned);
    let unversioned = dir.join("unversioned.so");
    let mut plain = args;
    plain.extend([
        "-DUNVERSIONED".into(),
        "-o".into(),
        unversioned.display().to_string(),
        lib_c.display().to_string(),
    ]);
    compile_c(&plain);
    let app = dir.join("app");
    let mut app_args = small.to_vec();
    app_args.extend([
        "-o".into(),
        app.display().to_string(),
        app_c.display().to_string(),
        lib.display().to_string(),
    ]);
    compile_c(&app_args);
    [lib, app, unversioned]
        .iter()
        .map(|p| std::fs::read(p).expect("reading a seed"))
        .collect()
}

#[test]
fn mutated_real_elf_files_never_panic() {
    let dir = tempdir();
    let seeds = seeds(dir.path());
    for s in &seeds {
        ElfImage::parse(Path::new("seed"), s).expect("every seed parses");
    }
    let mut rng = Rng(0x0dd5_eed5_1234_5678);
    let iterations = 20_000;
    let (mut parsed, mut rejected) = (0, 0);
    let path = Path::new("mutant.so");
    for i in 0..iterations {
        let mut data = seeds[i % seeds.len()].clone();
        // 1 to 8 edits: overwrite bytes (often with 0x00/0xff, the values
        // that make offsets and counts extreme), or cut the file.
        for _ in 0..=rng.below(8) {
            let at = rng.below(data.len().max(1));
            match rng.below(4) {
                0 => data[at] = rng.next() as u8,
                1 => data[at] = 0xff,
                2 => data[at] = 0,
                _ => data.truncate(at),
            }
            if data.is_empty() {
                break;
            }
        }
        match ElfImage::parse(path, &data) {
            Ok(image) => {
                parsed += 1;
                // What parses must be usable: it equals itself.
                assert!(
                    cudastub_codegen::audit::against_reference(&image, &image, None).is_empty(),
                    "mutant {i} differs from itself"
                );
            }
            Err(e) => {
                rejected += 1;
                assert!(
                    e.to_string().starts_with("mutant.so: error: "),
                    "mutant {i}: {e}"
                );
            }
        }
    }
    // Both outcomes must occur, or the mutations test nothing.
    assert!(
        parsed > 100 && rejected > 100,
        "{parsed} parsed, {rejected} rejected"
    );
}
