//! Rewrites the non-finite number tokens that devices put into JSON (`NaN`, `nan`, `-nan`,
//! `Infinity`, `-inf` and so on), which JSON forbids, so that `serde_json` can parse the rest.
//!
//! Each token in a value position is replaced by a marker string `"\u0000nf<index>"`. The
//! decoder recognises the marker when it reads a value and looks up the original token and its
//! byte offset. A token outside a value position (as an object key) is left alone, so the
//! payload stays invalid JSON there.

use std::borrow::Cow;

/// Start of the decoded marker string that replaces a non-finite token.
const MARKER_PREFIX: &str = "\u{0}nf";

/// One non-finite token found in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonFinite {
    /// The token as written, such as `-nan`.
    pub token: String,
    /// Byte offset of the token in the original payload.
    pub offset: usize,
}

/// A replacement made in the rewritten text, to map positions back to the original.
#[derive(Debug, Clone, Copy)]
struct Splice {
    rewritten_start: usize,
    rewritten_len: usize,
    original_start: usize,
    original_len: usize,
}

/// The payload with every non-finite token replaced, and where each one was.
#[derive(Debug)]
pub struct Rewritten<'a> {
    pub text: Cow<'a, str>,
    pub tokens: Vec<NonFinite>,
    splices: Vec<Splice>,
}

impl Rewritten<'_> {
    /// Returns the token that a decoded marker string stands for.
    pub fn token_for(&self, decoded: &str) -> Option<&NonFinite> {
        let index: usize = decoded.strip_prefix(MARKER_PREFIX)?.parse().ok()?;
        self.tokens.get(index)
    }

    /// Maps a byte offset in the rewritten text back to the original payload.
    pub fn original_offset(&self, rewritten: usize) -> usize {
        let mut shift: isize = 0;
        for splice in &self.splices {
            if rewritten < splice.rewritten_start {
                break;
            }
            if rewritten < splice.rewritten_start + splice.rewritten_len {
                return splice.original_start;
            }
            shift += splice.rewritten_len as isize - splice.original_len as isize;
        }
        (rewritten as isize - shift).max(0) as usize
    }
}

/// Kind of a container the scanner is inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// Finds non-finite tokens outside strings and in value positions, and replaces them.
pub fn rewrite(text: &str) -> Rewritten<'_> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut splices = Vec::new();
    let mut out = String::new();
    let mut copied_to = 0;
    let mut stack: Vec<Container> = Vec::new();
    // Whether the next token would be a value (rather than an object key).
    let mut expect_value = true;

    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_string(bytes, i);
                expect_value = false;
                continue;
            }
            b'{' => {
                stack.push(Container::Object);
                expect_value = false;
            }
            b'[' => {
                stack.push(Container::Array);
                expect_value = true;
            }
            b'}' | b']' => {
                stack.pop();
                expect_value = false;
            }
            b':' => expect_value = true,
            b',' => expect_value = stack.last() != Some(&Container::Object),
            b'+' | b'-' | b'n' | b'N' | b'i' | b'I' if expect_value => {
                if let Some(len) = non_finite_len(&bytes[i..]) {
                    out.push_str(&text[copied_to..i]);
                    let marker = format!("\"\\u0000nf{}\"", tokens.len());
                    splices.push(Splice {
                        rewritten_start: out.len(),
                        rewritten_len: marker.len(),
                        original_start: i,
                        original_len: len,
                    });
                    out.push_str(&marker);
                    tokens.push(NonFinite {
                        token: text[i..i + len].to_string(),
                        offset: i,
                    });
                    i += len;
                    copied_to = i;
                    expect_value = false;
                    continue;
                }
                expect_value = false;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => expect_value = false,
        }
        i += 1;
    }

    let text = if tokens.is_empty() {
        Cow::Borrowed(text)
    } else {
        out.push_str(&text[copied_to..]);
        Cow::Owned(out)
    };
    Rewritten {
        text,
        tokens,
        splices,
    }
}

/// Returns the index just past the string that starts at `start` (a `"`).
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Length of a non-finite token at the start of `bytes`: an optional sign, then `nan`,
/// `inf` or `infinity` in any case, not followed by a letter, digit or underscore.
fn non_finite_len(bytes: &[u8]) -> Option<usize> {
    let sign = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let rest = &bytes[sign..];
    let word = ["infinity", "nan", "inf"].into_iter().find(|word| {
        rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word.as_bytes())
    })?;
    let end = sign + word.len();
    match bytes.get(end) {
        Some(next) if next.is_ascii_alphanumeric() || *next == b'_' => None,
        _ => Some(end),
    }
}

/// Returns whether a text, such as a JSON string value, spells a non-finite number.
pub fn is_non_finite_word(text: &str) -> bool {
    non_finite_len(text.trim().as_bytes()) == Some(text.trim().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_tokens_in_value_positions() {
        let payload = r#"{"a": NaN, "b": [-nan, Infinity, 1], "c": "nan"}"#;
        let rewritten = rewrite(payload);
        let tokens: Vec<&str> = rewritten.tokens.iter().map(|t| t.token.as_str()).collect();
        assert_eq!(tokens, ["NaN", "-nan", "Infinity"]);
        assert_eq!(rewritten.tokens[0].offset, payload.find("NaN").unwrap());
        let value: serde_json::Value = serde_json::from_str(&rewritten.text).unwrap();
        let marker = value["b"][1].as_str().unwrap();
        assert_eq!(rewritten.token_for(marker).unwrap().token, "Infinity");
        assert_eq!(value["c"], "nan");
    }

    #[test]
    fn leaves_keys_and_words_alone() {
        for payload in [
            r#"{nan: 1}"#,
            r#"{"a": nano}"#,
            r#"{"a": null}"#,
            r#"[information]"#,
        ] {
            let rewritten = rewrite(payload);
            assert!(rewritten.tokens.is_empty(), "{payload}");
            assert_eq!(rewritten.text, payload);
        }
    }

    #[test]
    fn maps_offsets_back() {
        let payload = r#"{"a": nan, "b": x}"#;
        let rewritten = rewrite(payload);
        let rewritten_x = rewritten.text.find('x').unwrap();
        assert_eq!(
            rewritten.original_offset(rewritten_x),
            payload.find('x').unwrap()
        );
        let inside_marker = rewritten.text.find("\\u0000").unwrap();
        assert_eq!(
            rewritten.original_offset(inside_marker),
            payload.find("nan").unwrap()
        );
    }

    #[test]
    fn non_finite_words() {
        assert!(is_non_finite_word(" -Infinity "));
        assert!(is_non_finite_word("nan"));
        assert!(!is_non_finite_word("nano"));
        assert!(!is_non_finite_word("21.5"));
    }
}
