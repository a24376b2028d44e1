//! Text helpers for evaluators: lowercasing that keeps byte offsets (so
//! evidence spans found in the lowercase text point into the original), a
//! tokenizer, and a fast hash map for short keys.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A token: a byte range of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Whether `c` is part of a word (a letter or digit).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Symbols that are tokens of their own (`%`, `$`, `€`, `#`, `&`).
pub fn is_symbol(c: char) -> bool {
    matches!(c, '%' | '$' | '€' | '#' | '&')
}

/// `text` lowercased character by character, keeping every byte offset: a
/// character whose lowercase form has another UTF-8 length is kept as is.
pub fn lowercase_same_offsets(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes.make_ascii_lowercase();
    if !text.is_ascii() {
        for (at, c) in text.char_indices().filter(|(_, c)| !c.is_ascii()) {
            let mut chars = c.to_lowercase();
            if let (Some(l), None) = (chars.next(), chars.next())
                && l != c
                && l.len_utf8() == c.len_utf8()
            {
                l.encode_utf8(&mut bytes[at..at + c.len_utf8()]);
            }
        }
    }
    // Only whole characters were replaced by characters of the same
    // length, so the bytes are still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The tokens of `text`: runs of letters and digits, and the symbols of
/// [`is_symbol`] one by one. Everything else separates tokens.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(text.len() / 5);
    let mut start: Option<usize> = None;
    for (at, c) in text.char_indices() {
        if is_word_char(c) {
            start.get_or_insert(at);
            continue;
        }
        if let Some(s) = start.take() {
            tokens.push(Token { start: s, end: at });
        }
        if is_symbol(c) {
            tokens.push(Token {
                start: at,
                end: at + c.len_utf8(),
            });
        }
    }
    if let Some(s) = start {
        tokens.push(Token {
            start: s,
            end: text.len(),
        });
    }
    tokens
}

/// FNV-1a: fast for short keys. Inside a sandbox that lives for one
/// document, hash flooding is no concern.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_keeps_offsets() {
        let text = "DIAGNÓSTICO İ Straße";
        let lower = lowercase_same_offsets(text);
        assert_eq!(lower.len(), text.len());
        assert!(lower.starts_with("diagnóstico"));
    }

    #[test]
    fn tokens_are_words_and_symbols() {
        let text = "Cut 6% of $5, four-year plan.";
        let words: Vec<&str> = tokenize(text)
            .iter()
            .map(|t| &text[t.start..t.end])
            .collect();
        assert_eq!(
            words,
            ["Cut", "6", "%", "of", "$", "5", "four", "year", "plan"]
        );
    }
}
