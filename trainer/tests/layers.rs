//! The trainer's modules import only downward: every `crate::` path in every module of
//! `trainer/src` names a module of a lower layer than its own, in the order that
//! docs/architecture.md lists (its `layers` block, bottom first, one layer a line). A new
//! module must be placed there, and an import that points up or sideways fails here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn layers() -> HashMap<String, usize> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md"),
    )
    .expect("docs/architecture.md");
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```layers block in docs/architecture.md");
    let mut layers = HashMap::new();
    for (layer, line) in block.lines().enumerate() {
        for module in line.split_whitespace() {
            assert!(
                layers.insert(module.to_string(), layer).is_none(),
                "{module} twice"
            );
        }
    }
    layers
}

/// The `.rs` files of module `name`: `src/name.rs`, or every file under `src/name/`.
fn files(src: &Path, name: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut found = Vec::new();
    let mut dirs = vec![src.join(name)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a module folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The top-level modules named by `crate::` paths in `source`, comments left out.
fn imports(source: &str) -> Vec<String> {
    let mut modules = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue; // `fmnist_trainer_crate::` or the like
            }
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                modules.push(name);
            }
        }
    }
    modules
}

#[test]
fn every_module_imports_only_modules_of_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = layers();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let declared: Vec<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    assert!(declared.len() >= 15, "{declared:?}");
    let mut wrong = Vec::new();
    for module in &declared {
        let Some(&own) = layers.get(module) else {
            panic!("module `{module}` is not in the layers of docs/architecture.md");
        };
        for file in files(&src, module) {
            let source = std::fs::read_to_string(&file).expect("a source file");
            for used in imports(&source) {
                if used == *module || used == "say" {
                    continue; // itself, or the crate's `say!` macro
                }
                match layers.get(&used) {
                    Some(&layer) if layer < own => {}
                    Some(_) => wrong.push(format!("{} uses crate::{used}", file.display())),
                    None => {
                        wrong.push(format!("{}: crate::{used} is not a module", file.display()))
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that do not point down:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_finds_an_import_that_points_up() {
    let layers = layers();
    let found = imports("use crate::fit::prepare; // crate::train in a comment\nlet x = crate::util::files::write_atomic;");
    assert_eq!(found, ["fit", "util"]);
    assert!(layers["fit"] > layers["run"], "fit is above run");
}
