//! [`Text`]: the text of a word or value in the syntax tree, kept inline
//! when short.
//!
//! Nearly every keyword, label and value of a project is a few bytes
//! (`memory`, `256M`, `eth0`, `10.0.1.7`), and a tree of owned `String`s
//! paid an allocation for each when parsing and a free for each when the
//! tree was dropped: two of every three allocations of a parse. A `Text`
//! of up to [`Text::INLINE`] bytes lives inside the node itself, in the
//! same 24 bytes a `String` takes; longer ones are on the heap. The
//! storage is `compact_str`'s, so the small-string layout (and the
//! `unsafe` it takes) is a maintained crate's, not ours.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable string stored inline when it is at most [`Text::INLINE`]
/// bytes long. It reads as a `&str` (it derefs to one) and compares,
/// orders, hashes, prints and serializes exactly like one.
///
/// ```
/// use mln_lang::syntax::Text;
///
/// let t = Text::from("memory");
/// assert_eq!(t, "memory");
/// assert_eq!(t.len(), 6);
/// assert!(t.starts_with("mem"));
/// assert_eq!(format!("{t} {t:?}"), r#"memory "memory""#);
/// let long = Text::from("echo a line longer than the inline room".to_string());
/// assert_eq!(long.as_str(), "echo a line longer than the inline room");
/// assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<String>());
/// ```
#[derive(Clone, Default)]
pub struct Text(compact_str::CompactString);

impl Text {
    /// The longest text kept inline, in bytes (on 64-bit targets).
    pub const INLINE: usize = 24;

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// An owned copy as a `String`.
    pub fn to_owned_string(&self) -> String {
        self.as_str().to_owned()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(compact_str::CompactString::new(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(compact_str::CompactString::from(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Text::from(s.as_str())
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0.into_string()
    }
}

impl From<&Text> for String {
    fn from(t: &Text) -> Self {
        t.as_str().to_owned()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Text::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_boxed_read_the_same() {
        for s in [
            "",
            "a",
            "é",
            "0123456789",
            "012345678901234567890123",
            "0123456789012345678901234",
            "a much longer value than fits inline, with ünïcode",
        ] {
            let a = Text::from(s);
            let b = Text::from(s.to_string());
            assert_eq!(a.as_str(), s);
            assert_eq!(b.as_str(), s);
            assert_eq!(a, b);
            assert_eq!(String::from(a.clone()), s);
            assert_eq!(format!("{a:?}"), format!("{s:?}"));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                serde_json::to_string(s).unwrap()
            );
            let back: Text = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
            assert_eq!(back, s);
        }
        assert!(!Text::from("012345678901234567890123").0.is_heap_allocated());
        assert!(Text::from("0123456789012345678901234")
            .0
            .is_heap_allocated());
    }

    #[test]
    fn orders_like_str() {
        let mut v: Vec<Text> = ["b", "a", "a longer one, past the inline room", "c"]
            .into_iter()
            .map(Text::from)
            .collect();
        v.sort();
        let s: Vec<&str> = v.iter().map(Text::as_str).collect();
        assert_eq!(s, ["a", "a longer one, past the inline room", "b", "c"]);
    }
}
