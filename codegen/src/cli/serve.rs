//! `cudastub serve`: the remote GPU's server. The parent listens; each
//! connection is served by a child (`cudastub serve --session PLANS`) whose
//! standard input is the connection, so one client's crash, bad input or
//! GPU state never reaches another's, and a client that goes away takes its
//! contexts and memory with its child.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cudastub_codegen::catalog::{Catalog, default_index};
use cudastub_codegen::diag::{Diagnostic, Diagnostics};
use cudastub_remote::plan::MajorPlan;
use cudastub_remote::server::{
    HELLO_TIMEOUT, Listener, ModuleCache, SessionConfig, log, receive_timeout, session, share_plans,
};
use cudastub_remote::wire::Endpoint;

/// The options of `cudastub serve`.
pub struct Options {
    pub listen: String,
    pub lib_dir: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub module_cache: Option<PathBuf>,
    pub module_cache_mib: u64,
    pub manifest: Option<PathBuf>,
    pub session: Option<PathBuf>,
}

fn bad(path: &Path, message: impl Into<String>) -> Diagnostics {
    Diagnostic::file(path, message).into()
}

fn read_token(file: Option<&Path>) -> Result<Option<String>, Diagnostics> {
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(file, format!("cannot read: {e}")))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(bad(file, "the token file is empty"));
    }
    Ok(Some(token))
}

/// Runs the server (or, with `session`, one child session).
pub fn serve(o: Options) -> Result<u8, Diagnostics> {
    let listen_path = Path::new(&o.listen);
    let endpoint = Endpoint::parse(&o.listen).map_err(|e| bad(listen_path, e))?;
    let token = read_token(o.token_file.as_deref())?;
    if let Some(plans) = &o.session {
        return run_session(plans, o.lib_dir, token, o.module_cache);
    }
    if matches!(endpoint, Endpoint::Tcp(_)) && token.is_none() {
        return Err(bad(
            listen_path,
            "a TCP server needs --token-file: clients must prove who they are",
        ));
    }
    if let Some(dir) = &o.lib_dir
        && !dir.is_dir()
    {
        return Err(bad(dir, "not a directory (--lib-dir: the real libraries)"));
    }
    let modules = o.module_cache.clone().or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("cudastub/modules"))
    });
    if let Some(dir) = &modules {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| bad(dir, format!("cannot make the module cache: {e}")))?;
        let limit = o.module_cache_mib.saturating_mul(1 << 20);
        match ModuleCache(Some(dir)).prune(limit) {
            Ok((0, _)) => {}
            Ok((removed, left)) => log(format_args!(
                "cudastub serve: {removed} least recently used module images removed from {} ({} MiB left, --module-cache-mib {})",
                dir.display(),
                left >> 20,
                o.module_cache_mib
            )),
            Err(e) => log(format_args!(
                "cudastub serve: cannot prune the module cache {}: {e}",
                dir.display()
            )),
        }
    }
    let index = o.manifest.unwrap_or_else(default_index);
    let catalog = Catalog::load(&index)?;
    let plans: Vec<MajorPlan> = majors(&catalog)
        .into_iter()
        .map(|m| cudastub_codegen::remote::major_plan(&catalog, m))
        .collect();
    // The plans, computed once, for every session to read.
    let (_plans, plans_file) = share_plans(&plans)
        .map_err(|e| bad(Path::new("memfd"), format!("cannot share the plans: {e}")))?;
    let listener =
        Listener::bind(&endpoint).map_err(|e| bad(listen_path, format!("cannot listen: {e}")))?;
    let actual = listener
        .endpoint()
        .map_err(|e| bad(listen_path, format!("cannot listen: {e}")))?;
    log(format_args!(
        "cudastub serve: listening on {actual} (CUDA {}), real libraries from {}",
        plans
            .iter()
            .map(|p| p.major.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        o.lib_dir
            .as_deref()
            .map_or("the loader's search path".to_string(), |d| d
                .display()
                .to_string())
    ));
    let exe = std::env::current_exe()
        .map_err(|e| bad(Path::new("cudastub"), format!("cannot find itself: {e}")))?;
    let result = listener.run(|fd: OwnedFd| {
        let mut child = Command::new(&exe);
        child
            .arg("serve")
            .arg("--listen")
            .arg(&o.listen)
            .arg("--session")
            .arg(&plans_file);
        if let Some(d) = &o.lib_dir {
            child.arg("--lib-dir").arg(d);
        }
        if let Some(t) = &o.token_file {
            child.arg("--token-file").arg(t);
        }
        if let Some(m) = &modules {
            child.arg("--module-cache").arg(m);
        }
        child.stdin(Stdio::from(fd)).stdout(Stdio::null()).spawn()
    });
    result.map_err(|e| bad(listen_path, format!("cannot accept: {e}")))?;
    Ok(0)
}

fn majors(catalog: &Catalog) -> Vec<u32> {
    let mut majors: Vec<u32> = catalog.views().iter().map(|v| v.major).collect();
    majors.sort_unstable();
    majors.dedup();
    majors
}

fn run_session(
    plans_file: &Path,
    lib_dir: Option<PathBuf>,
    token: Option<String>,
    modules: Option<PathBuf>,
) -> Result<u8, Diagnostics> {
    let bytes =
        std::fs::read(plans_file).map_err(|e| bad(plans_file, format!("cannot read: {e}")))?;
    let plans = MajorPlan::decode_all(&bytes)
        .map_err(|e| bad(plans_file, format!("not a plans file: {e}")))?;
    let config = SessionConfig {
        plans,
        lib_dir,
        token,
        modules,
    };
    // The connection is standard input.
    let mut stream = std::fs::File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| bad(Path::new("stdin"), format!("not a connection: {e}")))?,
    );
    cudastub_remote::server::say_faults();
    // A connection that says nothing is not waited for forever.
    receive_timeout(&stream, Some(HELLO_TIMEOUT));
    let fd = stream
        .try_clone()
        .map_err(|e| bad(Path::new("stdin"), format!("not a connection: {e}")))?;
    // A client on this host (a Unix socket) may go on in shared memory.
    let mut shared_memory = |capacity: u32| cudastub_remote::shm::ShmStream::accept(&fd, capacity);
    let local = cudastub_remote::shm::is_unix_socket(&fd);
    match session(
        &mut stream,
        &config,
        &mut || receive_timeout(&fd, None),
        local.then_some(&mut shared_memory),
    ) {
        Ok(()) => Ok(0),
        // The client went away mid-message: its work ends with this process.
        Err(e) => {
            log(format_args!("cudastub serve: a session ended: {e}"));
            Ok(0)
        }
    }
}
