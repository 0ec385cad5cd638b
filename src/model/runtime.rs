//! Loading the ONNX Runtime shared library, once per process.
//!
//! radscore builds `ort` with `load-dynamic`: nothing is downloaded or linked at build
//! time, and the library is opened here. Left to itself, `ort` panics at first use when it
//! finds no library; [`init_runtime`] is called first so that a missing library is a
//! [`ModelError::RuntimeNotFound`] that says where it looked and how to fetch it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use super::ModelError;

/// Environment variable naming the library file; also the one `ort` itself reads.
pub const ORT_DYLIB_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// Where `scripts/setup.sh ort` puts the library, relative to the repository root.
pub const DEFAULT_LIBRARY_RELATIVE: &str = ".ort/lib/libonnxruntime.so";

/// Name of the process-wide environment in ONNX Runtime's logs.
const ENVIRONMENT_NAME: &str = "radscore";

/// The process-wide environment and the library it was loaded from.
struct Runtime {
    environment: Environment,
    library: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Serialises initialisation: `ort` allows one environment per process, so two threads
/// must not both try to build one. A failed attempt stores nothing and may be retried.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Load ONNX Runtime and create the process-wide environment, once.
///
/// The library is looked up in this order, and the first rule that applies decides:
/// 1. `explicit`, if given (it must exist);
/// 2. the `ORT_DYLIB_PATH` environment variable, if set and non-empty (it must exist);
/// 3. `.ort/lib/libonnxruntime.so` under the current directory;
/// 4. `.ort/lib/libonnxruntime.so` under each ancestor directory of the running
///    executable (so `target/debug/radscore` finds the repository's `.ort/`).
///
/// Later calls return `Ok(())` at once; the library loaded first stays in use
/// ([`loaded_library`] tells which).
///
/// # Errors
/// [`ModelError::RuntimeNotFound`] listing every path tried, [`ModelError::RuntimeLoad`]
/// when the file is not a usable ONNX Runtime, [`ModelError::RuntimeInit`] when the
/// environment cannot be created.
pub fn init_runtime(explicit: Option<&Path>) -> Result<(), ModelError> {
    environment_for(explicit).map(|_| ())
}

/// The library the process-wide environment was loaded from, once initialised.
pub fn loaded_library() -> Option<&'static Path> {
    RUNTIME.get().map(|r| r.library.as_path())
}

/// The process-wide environment, initialising it with the default search if needed.
pub(super) fn environment() -> Result<&'static Environment, ModelError> {
    environment_for(None)
}

fn environment_for(explicit: Option<&Path>) -> Result<&'static Environment, ModelError> {
    if let Some(rt) = RUNTIME.get() {
        warn_if_other_library(rt, explicit);
        return Ok(&rt.environment);
    }
    // A poisoned lock only means another thread panicked while initialising; the
    // OnceLock is still consistent, so carry on.
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(&rt.environment);
    }

    let library = locate_library(explicit)?;
    let environment = ort::init_from(&library)
        .map_err(|e| ModelError::RuntimeLoad {
            path: library.clone(),
            reason: e.to_string(),
        })?
        .with_name(ENVIRONMENT_NAME)
        .build()
        .map_err(|e| ModelError::RuntimeInit(e.to_string()))?;
    tracing::info!(library = %library.display(), "ONNX Runtime loaded");

    let rt = RUNTIME.get_or_init(|| Runtime {
        environment,
        library,
    });
    Ok(&rt.environment)
}

/// Log a call that names another library than the one already loaded.
fn warn_if_other_library(rt: &Runtime, explicit: Option<&Path>) {
    // LIMITATION: ort allows one environment per process, so the first library loaded stays.
    if let Some(path) = explicit.filter(|p| *p != rt.library) {
        tracing::warn!(
            requested = %path.display(),
            loaded = %rt.library.display(),
            "ONNX Runtime is already loaded from another file; keeping it"
        );
    }
}

/// Apply the search order of [`init_runtime`].
fn locate_library(explicit: Option<&Path>) -> Result<PathBuf, ModelError> {
    if let Some(path) = explicit {
        return existing_or_not_found(path.to_path_buf());
    }
    if let Some(value) = std::env::var_os(ORT_DYLIB_PATH_ENV).filter(|v| !v.is_empty()) {
        return existing_or_not_found(PathBuf::from(value));
    }

    let candidates = default_candidates();
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(ModelError::RuntimeNotFound {
            searched: candidates,
        }),
    }
}

fn existing_or_not_found(path: PathBuf) -> Result<PathBuf, ModelError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::RuntimeNotFound {
            searched: vec![path],
        })
    }
}

/// `.ort/lib/libonnxruntime.so` under the current directory, then under each ancestor of
/// the executable, without duplicates.
fn default_candidates() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }

    let mut candidates: Vec<PathBuf> = Vec::new();
    for root in roots {
        let candidate = root.join(DEFAULT_LIBRARY_RELATIVE);
        if !candidates.contains(&candidate) {
            candidates.push(candidate);
        }
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_path_is_a_clear_error() {
        let missing = Path::new("/nonexistent/radscore/libonnxruntime.so");
        let err = locate_library(Some(missing)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/radscore/libonnxruntime.so"),
            "{text}"
        );
        assert!(text.contains("scripts/setup.sh ort"), "{text}");
    }

    #[test]
    fn default_search_includes_cwd_and_executable_ancestors() {
        let candidates = default_candidates();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            candidates.first(),
            Some(&cwd.join(DEFAULT_LIBRARY_RELATIVE))
        );
        let exe_parent = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        assert!(candidates.contains(&exe_parent.join(DEFAULT_LIBRARY_RELATIVE)));
    }
}
