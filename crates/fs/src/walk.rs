//! Paths and globs to entries, and walks of directory trees, bounded.
//!
//! Globs match one path component per pattern component: `*` any run of
//! characters, `?` one, `[abc]`, `[a-z]`, `[!a]` a class, `\x` a literal
//! `x`; a component `**` matches any number of directories (zero included).
//! Symlinks are never followed into.

use std::collections::BTreeMap;

use crate::error::{FsError, Result};
use crate::{join, normalize, Entry, Filesystem, Kind, MAX_DEPTH};

/// Bounds on one request's work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Directory entries looked at, in all.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 10_000_000,
        }
    }
}

/// Whether `s` has glob characters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Whether `name` matches the one-component pattern `pat`.
pub fn matches(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point for the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, next)) = class(&p, pi, n[ni]) {
                        if ok {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                '\\' if pi + 1 < p.len() => {}
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A `[...]` class at `p[start]`: whether `c` is in it, and where it ends;
/// `None` when the class is not closed (then `[` is literal).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                found = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                found = true;
            }
            i += 1;
        }
    }
    None
}

struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    fn spend(&mut self, n: usize, path: &str) -> Result<()> {
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| FsError::Limit {
                path: path.into(),
                what: format!(
                    "more than {} directory entries would be looked at; ask for fewer paths",
                    self.limit
                ),
            })?;
        Ok(())
    }
}

/// The entries that `paths` (plain paths or globs) name, in path order, each
/// once. A plain path that does not exist, or a glob that matches nothing, is
/// `NotFound` naming it.
pub fn expand(fs: &mut dyn Filesystem, paths: &[String], limits: Limits) -> Result<Vec<Entry>> {
    let mut budget = Budget {
        left: limits.max_entries,
        limit: limits.max_entries,
    };
    let mut found = BTreeMap::new();
    for raw in paths {
        let path = normalize(raw)?;
        if !is_glob(&path) {
            let e = fs.stat(&path)?;
            found.insert(e.path.clone(), e);
            continue;
        }
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut hits = Vec::new();
        let root = fs.stat("/")?;
        glob_from(fs, root, &comps, 0, &mut hits, &mut budget)?;
        if hits.is_empty() {
            return Err(FsError::NotFound {
                path: format!("{path} (the pattern matched nothing)"),
            });
        }
        for e in hits {
            found.insert(e.path.clone(), e);
        }
    }
    Ok(found.into_values().collect())
}

fn glob_from(
    fs: &mut dyn Filesystem,
    at: Entry,
    comps: &[&str],
    depth: usize,
    hits: &mut Vec<Entry>,
    budget: &mut Budget,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(FsError::Limit {
            path: at.path,
            what: format!("deeper than {MAX_DEPTH} directories"),
        });
    }
    let Some((first, rest)) = comps.split_first() else {
        hits.push(at);
        return Ok(());
    };
    if at.kind != Kind::Dir {
        return Ok(());
    }
    if *first == "**" {
        // Zero directories, then each subdirectory with `**` still in force.
        glob_from(fs, at.clone(), rest, depth + 1, hits, budget)?;
        let children = fs.list(&at.path)?;
        budget.spend(children.len(), &at.path)?;
        for child in children.into_iter().filter(|c| c.kind == Kind::Dir) {
            glob_from(fs, child, comps, depth + 1, hits, budget)?;
        }
        return Ok(());
    }
    if !is_glob(first) {
        let literal = first.replace('\\', "");
        match fs.stat(&join(&at.path, &literal)) {
            Ok(child) => glob_from(fs, child, rest, depth + 1, hits, budget),
            Err(FsError::NotFound { .. }) | Err(FsError::NotADirectory { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    } else {
        let children = fs.list(&at.path)?;
        budget.spend(children.len(), &at.path)?;
        for child in children {
            if matches(first, child.name()) {
                glob_from(fs, child, rest, depth + 1, hits, budget)?;
            }
        }
        Ok(())
    }
}

/// Visits `root` and, for a directory, everything under it (parents before
/// children, in path order), without following symlinks.
pub fn walk(
    fs: &mut dyn Filesystem,
    root: Entry,
    limits: Limits,
    visit: &mut dyn FnMut(&mut dyn Filesystem, &Entry) -> Result<()>,
) -> Result<()> {
    let mut budget = Budget {
        left: limits.max_entries,
        limit: limits.max_entries,
    };
    let mut stack = vec![(root, 0usize)];
    while let Some((entry, depth)) = stack.pop() {
        visit(fs, &entry)?;
        if entry.kind == Kind::Dir {
            if depth >= MAX_DEPTH {
                return Err(FsError::Limit {
                    path: entry.path,
                    what: format!("deeper than {MAX_DEPTH} directories"),
                });
            }
            let children = fs.list(&entry.path)?;
            budget.spend(children.len(), &entry.path)?;
            stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_globs() {
        assert!(matches("*.log", "a.log"));
        assert!(matches("*.log", ".log"));
        assert!(!matches("*.log", "a.log.1"));
        assert!(matches("a?c", "abc"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[!a-c]x", "bx"));
        assert!(matches("[!a-c]x", "dx"));
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "a"));
        assert!(matches("*日本*", "x日本語"));
        assert!(matches("[", "["));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
    }
}
