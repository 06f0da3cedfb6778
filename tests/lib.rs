//! Shared helpers of the integration tests.
//!
//! The tests run against the real CUDA runtime libraries and headers, taken
//! from pinned PyPI wheels by `scripts/fetch-fixtures`; nothing is mocked. A
//! missing fixture fails the test loudly instead of skipping it, since a
//! skipped test passes without checking anything.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use cudastub_codegen::elf::ElfImage;
use cudastub_codegen::manifest::{self, Manifest};
use cudastub_remote::wire::Endpoint;

/// The workspace root (where `cuda-api.yaml` lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace root")
}

/// The checked-in index of every library's manifest (`cuda-api.yaml`).
pub fn index_path() -> PathBuf {
    repo_root().join("cuda-api.yaml")
}

/// The checked-in manifest of the CUDA runtime (`codegen/api/cudart.yaml`).
pub fn manifest_path() -> PathBuf {
    repo_root().join("codegen/api/cudart.yaml")
}

/// The checked-in `versionscripts/` directory.
pub fn versionscripts_dir() -> PathBuf {
    repo_root().join("versionscripts")
}

/// The checked-in manifest, loaded once.
pub fn checked_in_manifest() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        manifest::load(&manifest_path())
            .unwrap_or_else(|e| panic!("the checked-in manifest does not load:\n{e}"))
    })
}

/// One real CUDA runtime unpacked from its wheel.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Its major version (12, 13).
    pub major: u32,
    /// The release the wheel holds (`12.9.79`).
    pub release: &'static str,
    /// Its soname, which is also its version node (`libcudart.so.12`).
    pub soname: String,
    /// The real library (`.../lib/libcudart.so.12`).
    pub library: PathBuf,
    /// Its include directory, with the `crt/` headers of the same release.
    pub include: PathBuf,
    /// Its `lib/` directory, with a `libcudart.so` development link.
    pub lib_dir: PathBuf,
    /// How many functions it exports (measured: 435 and 458).
    pub export_count: usize,
}

/// The unpacked fixture trees under `target/fixtures/`.
#[derive(Clone, Debug)]
pub struct Fixtures {
    /// CUDA 12.9.79 runtime.
    pub cuda12: Runtime,
    /// CUDA 13.5.37 runtime.
    pub cuda13: Runtime,
    /// A working nvcc 13.5 tree (`bin/nvcc`, `nvvm/`, `include/`, `lib/`).
    pub nvcc13: PathBuf,
}

impl Fixtures {
    /// Both runtimes, oldest major first.
    pub fn runtimes(&self) -> [&Runtime; 2] {
        [&self.cuda12, &self.cuda13]
    }

    /// The runtime of `major`.
    pub fn runtime(&self, major: u32) -> &Runtime {
        self.runtimes()
            .into_iter()
            .find(|r| r.major == major)
            .unwrap_or_else(|| panic!("no fixture runtime for major {major}"))
    }

    /// The nvcc driver of the nvcc 13.5 tree.
    pub fn nvcc(&self) -> PathBuf {
        self.nvcc13.join("bin/nvcc")
    }
}

/// The fixture trees; panics, saying to run `scripts/fetch-fixtures`, when
/// any of them is missing.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = repo_root().join("target/fixtures");
        let runtime = |major: u32, release: &'static str, export_count: usize| {
            let tree = dir.join(format!("cuda{major}"));
            let soname = format!("libcudart.so.{major}");
            Runtime {
                major,
                release,
                library: tree.join("lib").join(&soname),
                soname,
                include: tree.join("include"),
                lib_dir: tree.join("lib"),
                export_count,
            }
        };
        let f = Fixtures {
            cuda12: runtime(12, "12.9.79", 435),
            cuda13: runtime(13, "13.5.37", 458),
            nvcc13: dir.join("nvcc13"),
        };
        let mut required = vec![dir.join(".stamp"), f.nvcc(), f.nvcc13.join("lib/libcudart.so")];
        for r in f.runtimes() {
            required.extend([
                r.library.clone(),
                r.lib_dir.join("libcudart.so"),
                r.include.join("cuda_runtime_api.h"),
                r.include.join("crt/host_defines.h"),
            ]);
        }
        let missing: Vec<String> = required
            .iter()
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "fixtures are missing: {}\nrun scripts/fetch-fixtures (or scripts/test, which runs it) first",
            missing.join(", ")
        );
        f
    })
}

/// The `cudastub` binary, built once per test process with
/// `$CARGO build --release --bin cudastub` in the workspace root.
pub fn cudastub() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // Exactly how scripts/test builds it (`cargo run --release --bin
        // cudastub`, the workspace's default members): `-p cudastub-codegen`
        // alone resolves dependency features differently (libc without the
        // shim's), which rebuilt bindgen and codegen, a minute on two cores.
        let output = Command::new(&cargo)
            .current_dir(repo_root())
            .args(["build", "--release", "--bin", "cudastub"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cargo.to_string_lossy()));
        assert!(
            output.status.success(),
            "building cudastub failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let binary = target_dir().join("release/cudastub");
        assert!(binary.is_file(), "cargo built no {}", binary.display());
        binary
    })
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => repo_root().join(d),
        None => repo_root().join("target"),
    }
}

/// What a finished command printed and how it exited.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The command line, for messages.
    pub command: String,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Outcome {
    /// Panics, showing the output, unless the command exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "expected exit code {code}: {self}");
        self
    }

    /// Panics, showing the output, unless the command exited with 0.
    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }
}

/// Runs `command` to completion and collects its output.
pub fn run(command: &mut Command) -> Outcome {
    let line = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    Outcome {
        command: line,
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the `cudastub` binary with `args` in the repository root.
pub fn run_cudastub<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run(Command::new(cudastub()).current_dir(repo_root()).args(args))
}

/// A temporary directory holding a copy of the checked-in manifest.
pub struct ManifestCopy {
    /// The directory; deleted on drop.
    pub dir: tempfile::TempDir,
    /// The copy: `<dir>/cudart.yaml`.
    pub path: PathBuf,
}

impl ManifestCopy {
    /// The copy's current text.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.path.display()))
    }

    /// Replaces the copy's text.
    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.path.display()));
    }
}

/// Copies the checked-in runtime manifest (`codegen/api/cudart.yaml`) into a fresh temporary directory.
pub fn copy_manifest_to_tempdir() -> ManifestCopy {
    let dir = tempdir();
    let path = dir.path().join("cudart.yaml");
    std::fs::copy(manifest_path(), &path).expect("copying codegen/api/cudart.yaml");
    ManifestCopy { dir, path }
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cudastub-test-")
        .tempdir()
        .expect("creating a temporary directory")
}

/// Copies the files of directory `from` (not recursive) into `to`.
pub fn copy_dir_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()))
    {
        let path = entry.expect("listing a directory").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("a file has a name")))
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", path.display()));
        }
    }
}

/// Every file under `dir` (recursively, hidden ones included) with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()))
        {
            let path = entry.expect("listing a directory").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                files.insert(
                    path.strip_prefix(dir).expect("under dir").to_path_buf(),
                    bytes,
                );
            }
        }
    }
    files
}

/// Panics, naming the files, unless `dir` holds exactly the files of `before`
/// with the same bytes (nothing written, modified, deleted or left behind).
pub fn assert_untouched(
    dir: &Path,
    before: &BTreeMap<PathBuf, Vec<u8>>,
    context: &dyn fmt::Display,
) {
    let after = snapshot(dir);
    let created: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    let deleted: Vec<_> = before.keys().filter(|p| !after.contains_key(*p)).collect();
    let modified: Vec<_> = before
        .iter()
        .filter(|(p, bytes)| after.get(*p).is_some_and(|b| b != *bytes))
        .map(|(p, _)| p)
        .collect();
    assert!(
        created.is_empty() && deleted.is_empty() && modified.is_empty(),
        "{} was changed: created {created:?}, deleted {deleted:?}, modified {modified:?}\n{context}",
        dir.display()
    );
}

/// The C compiler, as the `cc` crate finds it (`$CC`, else the platform's `cc`).
pub fn c_compiler() -> PathBuf {
    static COMPILER: OnceLock<PathBuf> = OnceLock::new();
    COMPILER
        .get_or_init(|| {
            cc::Build::new()
                .cargo_metadata(false)
                .target("x86_64-unknown-linux-gnu")
                .host("x86_64-unknown-linux-gnu")
                .opt_level(1)
                .get_compiler()
                .path()
                .to_path_buf()
        })
        .clone()
}

/// Runs the C compiler with `args`; panics with its output when it fails.
pub fn compile_c<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let outcome = run(Command::new(c_compiler()).args(args));
    assert_eq!(outcome.code, Some(0), "the C compiler failed: {outcome}");
    outcome
}

/// Reads an ELF file; panics with the reader's message when that fails.
pub fn read_elf(path: &Path) -> ElfImage {
    ElfImage::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `name@@node` lines of an image's exports, sorted by name.
pub fn versioned_exports(image: &ElfImage) -> Vec<String> {
    image.exports.iter().map(|s| s.versioned_name()).collect()
}

/// A readable difference of two sorted lists: what is only in each.
pub fn list_difference(
    left_name: &str,
    left: &[String],
    right_name: &str,
    right: &[String],
) -> String {
    let only_left: Vec<&String> = left.iter().filter(|l| !right.contains(l)).collect();
    let only_right: Vec<&String> = right.iter().filter(|r| !left.contains(r)).collect();
    format!(
        "{} in {left_name}, {} in {right_name}; only in {left_name}: {only_left:?}; only in {right_name}: {only_right:?}",
        left.len(),
        right.len()
    )
}

/// The 1-based line and column of the first occurrence of `needle` in `text`.
pub fn location_of(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` does not occur in the text"));
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    (
        text[..offset].matches('\n').count() + 1,
        offset - line_start + 1,
    )
}

/// A running `cudastub serve`, killed (with its sessions) when dropped.
pub struct RemoteServer {
    child: Child,
    /// Where it listens (a TCP port of 0 made real).
    pub endpoint: Endpoint,
    _modules: tempfile::TempDir,
}

impl RemoteServer {
    /// Starts `cudastub serve --listen LISTEN` on the standard manifests with
    /// the real libraries of `lib_dir`, and waits until it listens.
    pub fn start(listen: &str, lib_dir: &Path, token_file: Option<&Path>) -> RemoteServer {
        RemoteServer::start_with(listen, lib_dir, token_file, &[])
    }

    /// [`RemoteServer::start`] with these environment variables set for the
    /// server (its sessions inherit them).
    pub fn start_with(
        listen: &str,
        lib_dir: &Path,
        token_file: Option<&Path>,
        env: &[(&str, &str)],
    ) -> RemoteServer {
        // A module cache of its own: each test's first registration sends
        // its image whole.
        let modules = tempdir();
        let mut command = Command::new(cudastub());
        command
            .envs(env.iter().copied())
            .arg("serve")
            .arg("--module-cache")
            .arg(modules.path());
        command
            .args(["--listen", listen, "--manifest"])
            .arg(index_path())
            .arg("--lib-dir")
            .arg(lib_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(t) = token_file {
            command.arg("--token-file").arg(t);
        }
        // Its own process group: killing it kills its sessions too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().expect("start cudastub serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut line = String::new();
        let mut reader = BufReader::new(stderr);
        // Lines before it (the module cache pruned) are passed on.
        while reader.read_line(&mut line).expect("the server's output") > 0
            && !line.contains("listening on ")
        {
            eprint!("server: {line}");
            line.clear();
        }
        let address = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("not a listening line: {line}"));
        let endpoint = Endpoint::parse(address).expect("an endpoint");
        // Its later diagnostics, passed on to the test's output.
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                eprintln!("server: {line}");
            }
        });
        RemoteServer {
            child,
            endpoint,
            _modules: modules,
        }
    }

    /// Its module cache (`--module-cache`).
    pub fn module_cache(&self) -> &Path {
        self._modules.path()
    }

    /// Kills the server and every session, as a crash would.
    pub fn kill(&mut self) {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The remote plan of CUDA `major`, from the checked-in manifests.
pub fn remote_plan(major: u32) -> cudastub_remote::plan::MajorPlan {
    let catalog = cudastub_codegen::catalog::Catalog::load(&index_path()).expect("the manifests");
    cudastub_codegen::remote::major_plan(&catalog, major)
}

/// Calls `name` of `library` through `client` with the addresses of
/// `args`: one valid address per parameter, of the parameter's type (the
/// tests' own locals; the helper cannot check them).
pub fn remote(
    client: &mut cudastub_remote::client::Client,
    library: &str,
    name: &str,
    args: &[*const u8],
) -> Result<u64, cudastub_remote::client::CallError> {
    remote_returned(client, library, name, args).map(|r| r.value)
}

/// [`remote`], with all the call returned.
pub fn remote_returned(
    client: &mut cudastub_remote::client::Client,
    library: &str,
    name: &str,
    args: &[*const u8],
) -> Result<cudastub_remote::client::Returned, cudastub_remote::client::CallError> {
    let (l, f) = client
        .plan()
        .find(library, name)
        .unwrap_or_else(|| panic!("no {name}"));
    // SAFETY: as the caller promises, one valid address per parameter.
    unsafe { client.call(l, f, args) }
}
