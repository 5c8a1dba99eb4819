//! The crate's module layout, checked from its sources: dependencies between modules point one
//! way. Among the crate's top-level modules and among the daemon's there is no cycle, and inside
//! the daemon three layers hold:
//! - shared services (the task table, state files, exits, cleanup, events, …) use no verb;
//! - lifecycle verbs (one file each: `create.rs`, `delete.rs`, …) use services, never each other;
//! - the entry points (the ttrpc service, the sockets, adoption at start) use both.
//!
//! A module's imports are read from its `use` paths and qualified paths (`super::x`,
//! `crate::daemon::x`, `crate::x`, grouped ones included), leaving out comments and its
//! `#[cfg(test)] mod tests`, whose imports serve the tests only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The daemon's lifecycle verbs: each implements task API calls on the task manager.
const VERBS: &[&str] =
    &["checkpoint", "create", "delete", "exec", "kill", "pause", "pids", "resize", "start", "stats", "update"];

/// The daemon's entry points: they receive calls (ttrpc, the sockets) or run at start (adoption).
const ENTRY_POINTS: &[&str] = &["adopt", "server", "service"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of `path` that the module itself compiles: without comment lines and without its
/// unit tests.
fn module_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(start) => &text[..start],
        None => &text[..],
    };
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The first path segment of every item that follows `prefix` in `code`: `super::a::B` gives
/// `a`, `super::{a, b::{C, D}}` gives `a` and `b`.
fn first_segments_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in code.match_indices(prefix) {
        let preceded_by_identifier =
            code[..start].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        if preceded_by_identifier {
            continue;
        }
        let rest = &code[start + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut at_item_start = true;
            let mut identifier = String::new();
            for c in group.chars() {
                if c.is_alphanumeric() || c == '_' {
                    if depth == 1 && at_item_start {
                        identifier.push(c);
                    }
                    continue;
                }
                if !identifier.is_empty() {
                    names.insert(std::mem::take(&mut identifier));
                    at_item_start = false;
                }
                match c {
                    '{' => {
                        depth += 1;
                        at_item_start = false;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => at_item_start = true,
                    c if c.is_whitespace() => {}
                    _ => at_item_start = false,
                }
            }
        } else {
            let identifier: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !identifier.is_empty() {
                names.insert(identifier);
            }
        }
    }
    names
}

/// The daemon's modules and which of them each one uses.
fn daemon_graph() -> Graph {
    let dir = source_dir().join("daemon");
    let modules = module_names(&dir);
    let mut graph = Graph::new();
    for module in &modules {
        let code = module_code(&dir.join(format!("{module}.rs")));
        let mut used = first_segments_after(&code, "super::");
        used.extend(first_segments_after(&code, "crate::daemon::"));
        used.retain(|name| modules.contains(name) && name != module);
        graph.insert(module.clone(), used);
    }
    graph
}

/// The crate's top-level modules (a file or a directory with `mod.rs`) and which of them each
/// one uses.
fn crate_graph() -> Graph {
    let dir = source_dir();
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("reading src") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_stem().and_then(|stem| stem.to_str()).expect("a UTF-8 name").to_string();
        if path.is_dir() {
            files.insert(name, rust_files_under(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") && name != "lib" && name != "main" {
            files.entry(name).or_default().push(path);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .into_iter()
        .map(|(module, paths)| {
            let mut used = BTreeSet::new();
            for path in &paths {
                used.extend(first_segments_after(&module_code(path), "crate::"));
            }
            used.retain(|name| modules.contains(name) && *name != module);
            (module, used)
        })
        .collect()
}

fn module_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("reading a source directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "rs"))
        .filter_map(|path| path.file_stem().and_then(|stem| stem.to_str()).map(str::to_string))
        .filter(|name| name != "mod")
        .collect()
}

fn rust_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reading a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(rust_files_under(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
    found
}

/// Every cycle's modules, one cycle per entry (strongly connected components of more than one).
fn cycles(graph: &Graph) -> Vec<BTreeSet<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(module) = stack.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|module| (module, reaches(module))).collect();
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for module in graph.keys() {
        if !reach[module].contains(module) || found.iter().any(|cycle| cycle.contains(module)) {
            continue;
        }
        found.push(
            graph
                .keys()
                .filter(|other| reach[module].contains(*other) && reach[*other].contains(module))
                .cloned()
                .collect(),
        );
    }
    found
}

#[test]
fn the_parser_reads_plain_grouped_and_nested_paths() {
    let code = "use super::a::B;\nuse super::{c, d::{E, F}, g::H};\nlet x = super::i::j();\nfoo_super::k;";
    let names: Vec<String> = first_segments_after(code, "super::").into_iter().collect();
    assert_eq!(names, ["a", "c", "d", "g", "i"]);
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_nothing_else() {
    let graph: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(module, used)| (module.to_string(), used.into_iter().map(str::to_string).collect()))
        .collect();
    let found = cycles(&graph);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[test]
fn the_daemons_modules_import_each_other_in_no_cycle() {
    let graph = daemon_graph();
    assert!(graph.contains_key("create") && graph["create"].contains("manager"), "the graph was read: {graph:?}");
    assert_eq!(cycles(&graph), Vec::<BTreeSet<String>>::new(), "{graph:#?}");
}

#[test]
fn daemon_services_use_no_verb_and_verbs_use_no_other_verb() {
    let graph = daemon_graph();
    for verb in VERBS.iter().chain(ENTRY_POINTS) {
        assert!(graph.contains_key(*verb), "{verb} is a module of the daemon");
    }
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        if ENTRY_POINTS.contains(&module.as_str()) {
            continue;
        }
        for other in used {
            if VERBS.contains(&other.as_str()) || ENTRY_POINTS.contains(&other.as_str()) {
                wrong.push(format!("{module} uses {other}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:?}");
}

#[test]
fn the_crates_top_level_modules_import_each_other_in_no_cycle() {
    let graph = crate_graph();
    assert!(graph.contains_key("daemon") && graph["daemon"].contains("systemd"), "the graph was read: {graph:?}");
    assert_eq!(cycles(&graph), Vec::<BTreeSet<String>>::new(), "{graph:#?}");
}
