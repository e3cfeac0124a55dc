//! Configuration problems with their place in the file, and TOML loading that keeps
//! going after the first problem so that every problem is reported at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml_edit::{Document, Item};

/// One problem in a configuration file, printed as `FILE:LINE:COLUMN: KEY: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted key path, such as `mqtt.subscription[1].qos`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )
    }
}

/// Every problem found while loading a configuration and the files it references.
///
/// Errors make the configuration invalid. Warnings name a setting that loads but probably
/// does not do what the operator wants, and they never fail a load. `len`, `is_empty` and
/// `iter` count and list errors only.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Adds a warning, which does not make the configuration invalid.
    pub fn push_warning(&mut self, diagnostic: Diagnostic) {
        self.warnings.push(diagnostic);
    }

    /// Lists the warnings, printed as `FILE:LINE:COLUMN: KEY: warning: message`.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.warnings.iter()
    }

    /// Removes and returns the warnings, for a configuration that loaded.
    pub fn take_warnings(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.warnings)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Orders the problems by file, line and column, as a reader goes through them.
    pub fn sort(&mut self) {
        for list in [&mut self.items, &mut self.warnings] {
            list.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Adds a problem that has no place in a file, such as an unreadable path.
    pub fn file_error(&mut self, file: &Path, key: &str, message: impl Into<String>) {
        self.push(Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: key.to_string(),
            message: message.into(),
        });
    }
}

impl Diagnostic {
    /// Formats the diagnostic as a warning: `FILE:LINE:COLUMN: KEY: warning: message`.
    pub fn warning_line(&self) -> String {
        format!(
            "{}:{}:{}: {}: warning: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )
    }
}

/// Prints the errors, then the warnings, one per line.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.items.iter().map(ToString::to_string);
        let warnings = self.warnings.iter().map(Diagnostic::warning_line);
        for (i, line) in errors.chain(warnings).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// A parsed TOML file that remembers where every key and value sits.
pub struct TomlFile {
    pub path: PathBuf,
    text: String,
    doc: Document<String>,
}

impl TomlFile {
    /// Reads and parses `path`. A read or syntax error becomes a diagnostic.
    pub fn load(path: &Path, diags: &mut Diagnostics) -> Option<TomlFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => TomlFile::parse(path, text, diags),
            Err(err) => {
                diags.file_error(path, "-", format!("cannot read file: {err}"));
                None
            }
        }
    }

    pub fn parse(path: &Path, text: String, diags: &mut Diagnostics) -> Option<TomlFile> {
        match Document::parse(text.clone()) {
            Ok(doc) => Some(TomlFile {
                path: path.to_path_buf(),
                text,
                doc,
            }),
            Err(err) => {
                let (line, column) = err
                    .span()
                    .map(|span| line_column(&text, span.start))
                    .unwrap_or((1, 1));
                let message = err.message().trim().replace('\n', " ");
                diags.push(Diagnostic {
                    file: path.to_path_buf(),
                    line,
                    column,
                    key: "-".to_string(),
                    message: format!("invalid TOML: {message}"),
                });
                None
            }
        }
    }

    /// Returns the top-level item under `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Item> {
        self.doc.get(key)
    }

    /// Top-level keys not in `known`, each reported as unknown.
    pub fn reject_unknown_top_level(&self, known: &[&str], diags: &mut Diagnostics) {
        for (key, _) in self.doc.iter() {
            if !known.contains(&key) {
                let span = self.doc.key(key).and_then(|k| k.span());
                self.report(
                    diags,
                    key,
                    span,
                    format!("unknown key; expected one of: {}", known.join(", ")),
                );
            }
        }
    }

    /// Deserializes the top-level `key`. Returns `None` when it is missing or invalid; an
    /// invalid or unknown entry inside it is reported.
    pub fn section<T: DeserializeOwned>(&self, key: &str, diags: &mut Diagnostics) -> Option<T> {
        let item = self.doc.get(key)?;
        self.deserialize(item, key, diags)
    }

    /// Deserializes each entry of the array of tables `key` (`[[key]]`) on its own, so that
    /// one bad entry does not hide problems in the others. Invalid entries are left out.
    pub fn array_section<T: DeserializeOwned>(
        &self,
        parent: Option<&Item>,
        key: &str,
        key_path: &str,
        diags: &mut Diagnostics,
    ) -> Vec<T> {
        self.array_section_indexed(parent, key, key_path, diags)
            .into_iter()
            .map(|(_, value)| value)
            .collect()
    }

    /// Works as [`TomlFile::array_section`] but pairs each entry with its index in the file,
    /// so that checks after deserializing name the right entry when an earlier one was left
    /// out.
    pub fn array_section_indexed<T: DeserializeOwned>(
        &self,
        parent: Option<&Item>,
        key: &str,
        key_path: &str,
        diags: &mut Diagnostics,
    ) -> Vec<(usize, T)> {
        let item = match parent {
            Some(parent) => parent.get(key),
            None => self.doc.get(key),
        };
        let Some(item) = item else {
            return Vec::new();
        };
        let entries: Vec<Item> = match item {
            Item::ArrayOfTables(array) => array.iter().map(|t| Item::Table(t.clone())).collect(),
            other => {
                self.report(
                    diags,
                    key_path,
                    other.span(),
                    format!("expected one or more [[{key_path}]] tables"),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let path = format!("{key_path}[{index}]");
            if let Some(value) = self.deserialize(&entry, &path, diags) {
                out.push((index, value));
            }
        }
        out
    }

    /// Deserializes one item, reporting unknown keys and type errors against `key_path`.
    ///
    /// serde stops at the first invalid value, so after each one the offending key is removed
    /// from a copy of the item and the rest is deserialized again. Every invalid value is
    /// reported in one run. The value returned, if any, lacks the invalid keys, so the caller
    /// must treat the configuration as invalid whenever `diags` grew.
    pub fn deserialize<T: DeserializeOwned>(
        &self,
        item: &Item,
        key_path: &str,
        diags: &mut Diagnostics,
    ) -> Option<T> {
        let item_span = item_span(item);
        let mut remaining = item.clone();
        let mut reported_unknown = std::collections::HashSet::new();
        let mut removed: Vec<String> = Vec::new();
        loop {
            let value = match remaining.clone().into_value() {
                Ok(value) => value,
                Err(other) => {
                    self.report(diags, key_path, other.span(), "expected a table or a value");
                    return None;
                }
            };
            let mut unknown = Vec::new();
            let result = serde_ignored::deserialize(value.into_deserializer(), |path| {
                unknown.push(path.to_string());
            });
            // A pass stops at its first invalid value, so later passes may find more.
            for relative in unknown {
                if !reported_unknown.insert(relative.clone()) {
                    continue;
                }
                let segments: Vec<&str> = relative.split('.').collect();
                let span = lookup_key_span(item, &segments).or_else(|| item_span.clone());
                self.report(
                    diags,
                    &format!("{key_path}.{}", format_path(&segments)),
                    span,
                    "unknown key",
                );
            }
            let err = match result {
                Ok(value) => return Some(value),
                Err(err) => err,
            };
            let message = err.message().trim().to_string();
            // A required key that was removed for being invalid is reported already.
            let follows_removal = removed
                .iter()
                .any(|key| message == format!("missing field `{key}`"));
            if follows_removal {
                return None;
            }
            let Some(span) = err.span() else {
                // A missing field or another problem of the whole table.
                self.report(diags, key_path, item_span, message);
                return None;
            };
            match remove_value_at(&mut remaining, &span) {
                Some(path) => {
                    if let Some(key) = path.first() {
                        removed.push(key.clone());
                    }
                    let full = format!("{key_path}.{}", format_path_owned(&path));
                    self.report(diags, &full, Some(span), message);
                }
                None => {
                    self.report(diags, key_path, Some(span), message);
                    return None;
                }
            }
        }
    }

    /// Finds the span of the value at a dotted path below the document root, for semantic
    /// checks made after deserializing. Array elements are addressed by their index.
    pub fn span_of(&self, segments: &[&str]) -> Option<Range<usize>> {
        lookup_value_span(self.doc.as_item(), segments)
    }

    /// Reports a problem at `span`, or at the start of the file when there is none.
    pub fn report(
        &self,
        diags: &mut Diagnostics,
        key_path: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        let (line, column) = span
            .map(|span| line_column(&self.text, span.start))
            .unwrap_or((1, 1));
        diags.push(Diagnostic {
            file: self.path.clone(),
            line,
            column,
            key: key_path.to_string(),
            message: message.into(),
        });
    }

    /// Reports a problem found after deserializing at the value under `segments`, falling
    /// back to the nearest enclosing item that has a place in the file.
    pub fn report_at(
        &self,
        diags: &mut Diagnostics,
        segments: &[&str],
        message: impl Into<String>,
    ) {
        let mut span = None;
        for len in (0..=segments.len()).rev() {
            span = self.span_of(&segments[..len]);
            if span.is_some() {
                break;
            }
        }
        self.report(diags, &format_path(segments), span, message);
    }

    /// Adds a warning at the value under `segments`, placed as [`TomlFile::report_at`]
    /// places an error.
    pub fn warn_at(&self, diags: &mut Diagnostics, segments: &[&str], message: impl Into<String>) {
        let mut errors = Diagnostics::default();
        self.report_at(&mut errors, segments, message);
        for diagnostic in errors.items {
            diags.push_warning(diagnostic);
        }
    }
}

/// Converts a byte offset to a 1-based line and column (column counted in characters).
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Joins path segments as `a.b[2].c`.
fn format_path(segments: &[&str]) -> String {
    let mut out = String::new();
    for segment in segments {
        if segment.parse::<usize>().is_ok() && !out.is_empty() {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

fn format_path_owned(segments: &[String]) -> String {
    let borrowed: Vec<&str> = segments.iter().map(String::as_str).collect();
    format_path(&borrowed)
}

fn contains(outer: &Option<Range<usize>>, inner: &Range<usize>) -> bool {
    outer
        .as_ref()
        .is_some_and(|outer| outer.start <= inner.start && inner.end <= outer.end)
}

/// Removes the key whose value contains `span` from `item`, looking into nested tables, and
/// returns the key's path below `item`. A value inside an array removes the whole array.
fn remove_value_at(item: &mut Item, span: &Range<usize>) -> Option<Vec<String>> {
    if let Item::ArrayOfTables(array) = item {
        for (index, table) in array.iter_mut().enumerate() {
            if let Some(mut path) = remove_from_table(table, span) {
                path.insert(0, index.to_string());
                return Some(path);
            }
        }
        return None;
    }
    remove_from_table(item.as_table_like_mut()?, span)
}

/// Works on both `[table]` and `{ inline = "table" }` forms.
fn remove_from_table(
    table: &mut dyn toml_edit::TableLike,
    span: &Range<usize>,
) -> Option<Vec<String>> {
    let mut found = None;
    for (key, child) in table.iter_mut() {
        if let Some(mut path) = remove_value_at(child, span) {
            path.insert(0, key.get().to_string());
            return Some(path);
        }
        if contains(&child.span(), span) {
            found = Some(key.get().to_string());
            break;
        }
    }
    let key = found?;
    table.remove(&key);
    Some(vec![key])
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Table(table) => table.span(),
        other => other.span(),
    }
}

/// A place in the document: tables inside an array of tables are not `Item`s.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a toml_edit::Table),
}

impl<'a> Node<'a> {
    fn child(self, segment: &str) -> Option<Node<'a>> {
        match self {
            Node::Item(item) => {
                if let (Ok(index), Some(array)) =
                    (segment.parse::<usize>(), item.as_array_of_tables())
                {
                    return array.get(index).map(Node::Table);
                }
                item.get(segment).map(Node::Item)
            }
            Node::Table(table) => table.get(segment).map(Node::Item),
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(item) => item_span(item),
            Node::Table(table) => table.span(),
        }
    }

    fn key_span(self, key: &str) -> Option<Range<usize>> {
        let table: &dyn toml_edit::TableLike = match self {
            Node::Item(item) => item.as_table_like()?,
            Node::Table(table) => table,
        };
        table.key(key).and_then(|k| k.span())
    }
}

fn lookup_value_span(item: &Item, segments: &[&str]) -> Option<Range<usize>> {
    let mut current = Node::Item(item);
    for (i, segment) in segments.iter().enumerate() {
        if let Node::Item(inner) = current {
            if let (Ok(index), Some(array)) = (segment.parse::<usize>(), inner.as_array()) {
                let is_last = i + 1 == segments.len();
                return if is_last {
                    array.get(index).and_then(|v| v.span())
                } else {
                    None
                };
            }
        }
        current = current.child(segment)?;
    }
    current.span()
}

fn lookup_key_span(item: &Item, segments: &[&str]) -> Option<Range<usize>> {
    let (last, parents) = segments.split_last()?;
    let mut current = Node::Item(item);
    for segment in parents {
        current = current.child(segment)?;
    }
    current.key_span(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Sub {
        name: String,
        #[serde(default)]
        qos: u8,
    }

    fn parse(text: &str) -> (TomlFile, Diagnostics) {
        let mut diags = Diagnostics::default();
        let file = TomlFile::parse(Path::new("gw.toml"), text.to_string(), &mut diags).unwrap();
        (file, diags)
    }

    #[test]
    fn reports_every_entry_problem_with_position() {
        let text = "[[sub]]\nname = \"a\"\nqos = \"high\"\n\n[[sub]]\nname = \"b\"\ncolour = 3\n";
        let (file, mut diags) = parse(text);
        let subs: Vec<Sub> = file.array_section(None, "sub", "sub", &mut diags);
        assert_eq!(
            subs.len(),
            2,
            "entries come back without their invalid keys"
        );
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("gw.toml:3:7: sub[0].qos: "),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1], "gw.toml:7:1: sub[1].colour: unknown key");
    }

    #[test]
    fn inline_table_errors_all_reported() {
        let (file, mut diags) = parse("sub = { name = 1, qos = \"high\" }\n");
        let sub: Option<Sub> = file.section("sub", &mut diags);
        assert!(sub.is_none(), "name is required and invalid");
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("gw.toml:1:16: sub.name: "),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("gw.toml:1:25: sub.qos: "),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn indexed_entries_keep_file_index() {
        let text = "[[sub]]\nname = 1\n\n[[sub]]\nname = \"b\"\n";
        let (file, mut diags) = parse(text);
        let subs: Vec<(usize, Sub)> = file.array_section_indexed(None, "sub", "sub", &mut diags);
        assert_eq!(diags.len(), 1, "{diags}");
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].0, 1, "the second entry keeps index 1");
        assert_eq!(subs[0].1.name, "b");
    }

    #[test]
    fn warnings_are_not_errors() {
        let (file, mut diags) = parse("[mqtt]\nport = 1883\n");
        file.warn_at(&mut diags, &["mqtt", "port"], "odd port");
        assert!(diags.is_empty());
        assert_eq!(diags.len(), 0);
        let warnings: Vec<String> = diags.warnings().map(Diagnostic::warning_line).collect();
        assert_eq!(warnings, ["gw.toml:2:8: mqtt.port: warning: odd port"]);
        assert_eq!(
            diags.to_string(),
            "gw.toml:2:8: mqtt.port: warning: odd port"
        );
        assert_eq!(diags.take_warnings().len(), 1);
        assert_eq!(diags.warnings().count(), 0);
    }

    #[test]
    fn syntax_error_has_position() {
        let mut diags = Diagnostics::default();
        let parsed = TomlFile::parse(Path::new("x.toml"), "a = [1,\nb = 2\n".into(), &mut diags);
        assert!(parsed.is_none());
        let line = diags.iter().next().unwrap().to_string();
        assert!(line.starts_with("x.toml:2:"), "{line}");
    }

    #[test]
    fn span_of_finds_nested_values() {
        let (file, _) = parse("[mqtt]\nport = 99999\n[[dev]]\nx = 1\n[[dev]]\nx = 2\n");
        let (line, column) =
            line_column(&file.text, file.span_of(&["mqtt", "port"]).unwrap().start);
        assert_eq!((line, column), (2, 8));
        let span = file.span_of(&["dev", "1", "x"]).unwrap();
        assert_eq!(line_column(&file.text, span.start), (6, 5));
    }
}
