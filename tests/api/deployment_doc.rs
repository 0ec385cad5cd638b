//! `docs/deployment.md` names every environment variable the code reads, so the table of
//! variables cannot fall behind `src/config.rs`.

use crate::helpers::crate_dir;

/// Variable names in `env = "NAME"` clap attributes and `env::var("NAME")` calls.
fn env_names_in(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for marker in ["env = \"", "env::var(\"", "env::var_os(\""] {
        for rest in source.split(marker).skip(1) {
            if let Some((name, _)) = rest.split_once('"') {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Every variable read in `src/` (test modules aside) has a row in the deployment table.
#[test]
fn deployment_doc_lists_every_environment_variable() {
    let doc = std::fs::read_to_string(crate_dir().join("docs/deployment.md")).unwrap();
    let mut names = Vec::new();
    let mut dirs = vec![crate_dir().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                names.extend(env_names_in(&std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    assert!(names.iter().any(|n| n == "RADSCORE_BLOB_URL"), "{names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !doc.contains(&format!("| `{n}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/deployment.md lacks a table row for {missing:?}"
    );
}
